"""An unchanged AWS Lambda handler (API Gateway REST proxy integration) running on hotfn.

hotfn's Lambda adapter (func.json: HOTFN_ADAPTER=lambda) turns each request into the proxy
event and the returned dict into the response, base64 bodies included.
"""

import base64
import json


def handler(event, context):
    query = event.get("queryStringParameters") or {}
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "multiValueHeaders": {"x-runtime": ["hotfn", "lambda-adapter"]},
        "body": json.dumps({
            "message": f"Hello, {query.get('name', 'world')}!",
            "method": event["httpMethod"],
            "path": event["path"],
            "body": body,
            "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
        }),
    }
