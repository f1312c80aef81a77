"""Image references read by Docker's grammar (hotfn.models.imageref), and the image policies that
match them (hotfn.access.image_policy): pure, byte-exact, no engine."""

from __future__ import annotations

import time

import pytest

from hotfn.access import ImagePolicy
from hotfn.models import App, ImageRef, InvalidImageRef, ValidationError, app_image_scope, new_route
from hotfn.models.imageref import parse_image_ref

HEX = "0123456789abcdef" * 4  # 64 hex digits


@pytest.mark.parametrize("text, domain, path, tag, digest, familiar, normalized", [
    ("busybox", "docker.io", "library/busybox", None, None, "busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox:1.36",
     "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io", "library/busybox", None, None, "busybox",
     "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox", "docker.io", "library/busybox", None, None, "busybox",
     "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io", "library/busybox", None, None, "busybox",
     "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io", "library/busybox", None, None, "busybox",
     "docker.io/library/busybox:latest"),
    ("hotfn-fn/shop/hello:latest", "docker.io", "hotfn-fn/shop/hello", "latest", None,
     "hotfn-fn/shop/hello:latest", "docker.io/hotfn-fn/shop/hello:latest"),
    ("docker.io/hotfn-fn/shop/hello", "docker.io", "hotfn-fn/shop/hello", None, None,
     "hotfn-fn/shop/hello", "docker.io/hotfn-fn/shop/hello:latest"),
    ("localhost/x", "localhost", "x", None, None, "localhost/x", "localhost/x:latest"),
    ("localhost:5000/team/fn:v2", "localhost:5000", "team/fn", "v2", None,
     "localhost:5000/team/fn:v2", "localhost:5000/team/fn:v2"),
    ("127.0.0.1:9/hotfn-absent:v1", "127.0.0.1:9", "hotfn-absent", "v1", None,
     "127.0.0.1:9/hotfn-absent:v1", "127.0.0.1:9/hotfn-absent:v1"),
    ("registry.example.com/a/b/c", "registry.example.com", "a/b/c", None, None,
     "registry.example.com/a/b/c", "registry.example.com/a/b/c:latest"),
    ("[::1]:5000/fn", "[::1]:5000", "fn", None, None, "[::1]:5000/fn", "[::1]:5000/fn:latest"),
    (f"busybox@sha256:{HEX}", "docker.io", "library/busybox", None, f"sha256:{HEX}",
     f"busybox@sha256:{HEX}", f"docker.io/library/busybox@sha256:{HEX}"),
    (f"hotfn-fn/a/x:v1@sha256:{HEX}", "docker.io", "hotfn-fn/a/x", "v1", f"sha256:{HEX}",
     f"hotfn-fn/a/x:v1@sha256:{HEX}", f"docker.io/hotfn-fn/a/x:v1@sha256:{HEX}"),
    (f"x@sha512:{HEX * 2}", "docker.io", "library/x", None, f"sha512:{HEX * 2}",
     f"x@sha512:{HEX * 2}", f"docker.io/library/x@sha512:{HEX * 2}"),
    ("hotfn-fn/a.b_c__d---e", "docker.io", "hotfn-fn/a.b_c__d---e", None, None,
     "hotfn-fn/a.b_c__d---e", "docker.io/hotfn-fn/a.b_c__d---e:latest"),
    ("host.com:5000", "docker.io", "library/host.com", "5000", None, "host.com:5000",
     "docker.io/library/host.com:5000"),
    ("cafe:latest", "docker.io", "library/cafe", "latest", None, "cafe:latest",
     "docker.io/library/cafe:latest"),
    ("x:_Tag.-9", "docker.io", "library/x", "_Tag.-9", None, "x:_Tag.-9", "docker.io/library/x:_Tag.-9"),
])
def test_a_valid_reference_is_read_as_docker_reads_it(text, domain, path, tag, digest, familiar,
                                                     normalized):
    ref = parse_image_ref(text)
    assert ref == ImageRef(domain, path, tag, digest)
    assert ref.familiar() == familiar
    assert ref.normalized() == normalized


@pytest.mark.parametrize("text", [
    # the finding: a dot segment that the engine's HTTP client resolves away
    "hotfn-fn/../other/image:1", "hotfn-fn/..", "../x", "hotfn-fn/./x", "./x", ".", "..",
    "hotfn-fn/a/../../other/image",
    # empty components, slashes at the ends
    "hotfn-fn//other/image", "//x", "/x", "x/", "hotfn-fn/a/",
    # upper case in the path (only a registry host may have it)
    "hotfn-fn/B/x", "hotfn-fn/b/X", "Busybox", "BUSYBOX:1",
    # ... and in a registry host: newer engines read HOTFN-FN as a host, older ones refuse it
    "HOTFN-FN/b/x", "Hotfn-fn/b/x", "Registry.example.com/x", "LOCALHOST/x",
    # separators: one '.', one or two '_', any number of '-', only between letters and digits
    "a..b", "a___b", "a._b", "a.-b", "-a", "a-", "_a", "a_", ".a", "a.",
    # tags
    "x:", "x:-v", "x:.v", "x:" + "v" * 129, "x:v/1", "x:v:1", "x:é",
    # digests: known algorithms, lower-case hex of their exact length
    "x@", "x@sha256:", f"x@sha256:{HEX[:-1]}", f"x@sha256:{HEX}0", f"x@sha256:{HEX.upper()}",
    f"x@md5:{HEX[:32]}", f"x@sha512:{HEX}", f"x@SHA256:{HEX}", f"x@sha256:{HEX}:latest",
    f"x@sha256:{HEX}@sha256:{HEX}",
    # hosts
    "-host.com/x", "host-.com/x", "host..com/x", "host.com:/x", "host.com:port/x", "[::1/x",
    "[zz::1]:5000/x", "a_b.c/x", "a.b_c/x",
    # a name the engine would also look up as an image id (or its prefix)
    "b5d851", "a", "cafe", HEX, f"sha256:{HEX}", "sha256:b5d851", "sha256", "sha512:abc",
    # whitespace, controls, other characters, other types
    "", " x", "x ", "x\n", "x\t", "x\0", "é", "x?y", "x#y", "x%2F..%2Fy", "x\\y", "x;y",
    "a" * 513, "a/" * 128 + "b",
    None, 7, ["x"], b"busybox",
])
def test_anything_else_is_refused(text):
    with pytest.raises(InvalidImageRef):
        parse_image_ref(text)


def test_a_refusal_says_what_a_reference_is():
    with pytest.raises(ValidationError) as refused:
        new_route("a", {"path": "/x", "image": "hotfn-fn/../other/image:1"})
    assert refused.value.field == "route.image"
    assert "is not a Docker image reference" in refused.value.message
    assert "'..'" in refused.value.message
    with pytest.raises(InvalidImageRef, match=r"could also be read as an image id.*\(b5d851:latest\)"):
        parse_image_ref("b5d851")


def test_the_name_is_capped_as_docker_caps_it():
    ref = parse_image_ref("x" * 240 + "/abcd")  # docker.io/ and this: 255 characters
    assert len(ref.name) == 255
    with pytest.raises(InvalidImageRef, match="at most 255"):
        parse_image_ref("x" * 240 + "/abcde")


def test_hostile_inputs_are_read_in_linear_time():
    for text in ["a" * 511 + "!", "a-" * 255 + "!", "a." * 255 + "/!", ("a" * 60 + ".") * 8 + ":1/x!",
                 "a/" * 255 + "!", "[" + ":" * 510, "a" + "__a" * 170 + "_!"]:
        start = time.perf_counter()
        with pytest.raises(InvalidImageRef):
            parse_image_ref(text)
        assert time.perf_counter() - start < 0.05, text


def test_an_image_hotfn_builds_belongs_to_its_app():
    assert parse_image_ref("hotfn-fn/shop/hello:latest").built_for == "shop"
    assert parse_image_ref("docker.io/hotfn-fn/shop/a/b").built_for == "shop"
    assert parse_image_ref("index.docker.io/hotfn-fn/shop/hello").built_for == "shop"
    for other in ["hotfn-fn/hello", "localhost/hotfn-fn/shop/hello", "hotfn/python",
                  "x/hotfn-fn/shop/hello", "example.com/hotfn-fn/shop/hello"]:
        assert parse_image_ref(other).built_for is None, other
    # The component `hotfn deploy --app X` names X's images by (hotfn.functions.default_tag).
    from hotfn.functions import default_tag

    for app in ["shop", "Shop", "my_app", "a--b", "A_b-C", "_x_"]:
        scope = app_image_scope(app)
        assert default_tag("/tmp/hello", app) == f"hotfn-fn/{scope}/hello:latest"
        assert parse_image_ref(default_tag("/tmp/hello", app)).built_for == scope


# -- the policies --


def test_server_patterns_match_the_normalised_name_in_any_spelling():
    policy = ImagePolicy("hotfn-fn/*,busybox,docker.io/library/alpine:*")
    for image in ["hotfn-fn/shop/hello", "docker.io/hotfn-fn/shop/hello:v2",
                  "index.docker.io/hotfn-fn/x/y", "busybox", "docker.io/library/busybox",
                  "library/busybox", "alpine", "alpine:3.19"]:
        assert policy.allows(image), image
    for image in ["hotfn-fn/../other/image:1", "hotfn-fn//other/image", "hotfn-fn/./other",
                  "other/image", "busybox:1", "localhost/hotfn-fn/x", "HOTFN-FN/x/y",
                  "registry.example.com/hotfn-fn/x", f"sha256:{HEX}", "b5d851"]:
        assert not policy.allows(image), image
    # '*' allows every image, never a string that is not one.
    everything = ImagePolicy("*")
    assert everything.allows("anything/at:all") and not everything.allows("hotfn-fn/../x")
    assert "not a Docker image reference" in everything.refusal("a//b")


def test_an_app_runs_its_own_images_and_no_other_apps_by_default():
    policy = ImagePolicy("*")
    shop, blog = App("shop"), App("blog")
    assert policy.refusal("hotfn-fn/shop/hello", shop) is None
    assert policy.refusal("busybox", shop) is None  # the server's list
    assert policy.refusal("hotfn-fn/local/hello", shop) is not None  # `hotfn run`'s, no app's
    for image in ["hotfn-fn/blog/post", "docker.io/hotfn-fn/blog/post:v1",
                  "index.docker.io/hotfn-fn/blog/post", f"hotfn-fn/blog/post@sha256:{HEX}"]:
        refusal = policy.refusal(image, shop)
        assert refusal is not None and "built for another app (blog)" in refusal, image
        assert policy.refusal(image, blog) is None
    # The app's component, as hotfn deploy names it: app "My_Shop" owns hotfn-fn/my-shop/.
    assert policy.refusal("hotfn-fn/my-shop/x", App("My_Shop")) is None
    # Still held by the server's list.
    strict = ImagePolicy("hotfn/*")
    assert "--allowed-images" in strict.refusal("hotfn-fn/shop/hello", shop)


def test_an_admin_may_let_an_app_run_more_or_less():
    policy = ImagePolicy("hotfn-fn/*,hotfn/*")
    shared = App("shop", allowed_images=("hotfn-fn/shop/*", "hotfn-fn/blog/*"))
    assert policy.refusal("hotfn-fn/blog/post", shared) is None
    assert policy.refusal("hotfn-fn/shop/x", shared) is None
    assert "allowed_images are 'hotfn-fn/shop/*,hotfn-fn/blog/*'" in policy.refusal("hotfn/python", shared)
    assert "built for another app (wiki)" in policy.refusal("hotfn-fn/wiki/x", shared)
    # A list replaces the default, own images included; the server's list still holds.
    narrow = App("shop", allowed_images=("hotfn/python",))
    assert policy.refusal("hotfn/python", narrow) is None
    assert policy.refusal("hotfn-fn/shop/x", narrow) is not None
    assert "--allowed-images" in ImagePolicy("hotfn-fn/*").refusal("hotfn/python", narrow)
    # Decisions are remembered per list: a changed list is decided afresh.
    assert policy.refusal("hotfn-fn/blog/post", App("shop")) is not None
