def handler(request):
    name = request.query_param("name") or request.text() or "world"
    return f"Hello, {name}!\n"
