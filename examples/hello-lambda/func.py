"""An unchanged AWS Lambda handler (API Gateway proxy integration) running on hotfn."""

import json


def handler(event, context):
    name = (event.get("queryStringParameters") or {}).get("name") or "world"
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"message": f"Hello, {name}!", "request_id": context.aws_request_id}),
    }
