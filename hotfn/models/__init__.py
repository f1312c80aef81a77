"""The records hotfn keeps (apps, routes, calls, API tokens) and the rules their fields follow.

Validation lives here, once, for the API and the store alike: a ValidationError names the field
that is wrong, and the API turns it into a 400.

May import: nothing of hotfn. Everything else may import it.
"""

from .fields import (
    ValidationError,
    config_env,
    env_name,
    header_env_name,
    header_problem,
    merge_config,
    now,
    secrets_from_record,
)
from .imageref import (
    ImageRef,
    InvalidImageRef,
    app_image_scope,
    check_image,
    parse_image_ref,
)
from .logtext import log_text
from .app import (
    APP_NAME,
    App,
    app_from_record,
    check_app_name,
    check_image_patterns,
    new_app,
    patch_app,
)
from .route import (
    DEFAULT_USER,
    FORMATS,
    GREEDY_SEGMENT,
    HOT_FORMATS,
    ISOLATIONS,
    MAX_CPUS,
    MIN_CPUS,
    MIN_JWT_KEY_BYTES,
    ROUTE_AUTH,
    TYPES,
    Route,
    check_cpus,
    check_isolation,
    check_user,
    new_route,
    normalize_path,
    patch_route,
    route_from_record,
    whole_seconds,
)
from .call import (
    CALL_STATUSES,
    Call,
    new_call_id,
)
from .tokens import (
    MAX_SECRET_LENGTH,
    SCOPES,
    Token,
    hash_secret,
    new_secret,
    new_token,
    secret_shaped,
    token_from_record,
)

__all__ = [
    "APP_NAME", "CALL_STATUSES", "DEFAULT_USER", "FORMATS", "GREEDY_SEGMENT", "HOT_FORMATS",
    "ISOLATIONS", "MAX_CPUS", "MAX_SECRET_LENGTH", "MIN_CPUS", "MIN_JWT_KEY_BYTES", "ROUTE_AUTH",
    "SCOPES", "TYPES", "App", "Call", "ImageRef", "InvalidImageRef", "Route", "Token",
    "ValidationError", "app_from_record", "app_image_scope", "check_app_name", "check_cpus",
    "check_image", "check_image_patterns", "check_isolation", "check_user", "config_env",
    "env_name", "hash_secret", "header_env_name", "header_problem", "log_text", "merge_config",
    "new_app", "new_call_id", "new_route", "new_secret", "new_token", "normalize_path", "now",
    "parse_image_ref", "patch_app", "patch_route", "route_from_record", "secret_shaped",
    "secrets_from_record", "token_from_record", "whole_seconds",
]
