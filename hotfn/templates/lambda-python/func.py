import json


def handler(event, context):
    """An AWS Lambda (API Gateway proxy) handler, run unchanged by hotfn's Lambda adapter."""
    name = (event.get("queryStringParameters") or {}).get("name") or "world"
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps({"message": f"Hello, {name}!"})}
