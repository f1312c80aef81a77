# A whole WSGI app behind one route (/api/*rest): every path under /api reaches this one warm
# container. The greedy parameter's value rides along in a header, to show it arrives.
from app import application
from wsgi_bridge import serve


def handler(request):
    response = serve(application, request)
    response.headers.append(("x-rest", request.params.get("rest", "")))
    return response
