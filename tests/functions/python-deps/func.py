# A function with a vendored dependency (as `pip install --target .` lays one out).
import tinyfmt


def handler(request):
    return tinyfmt.shout(request.query_param("name", "world"))
