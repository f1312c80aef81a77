from .server import HttpConfig, HttpServer

__all__ = ["HttpConfig", "HttpServer"]
