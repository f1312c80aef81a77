"""The token check keeps what the store said (issue 21.13c): a call no longer reads the store
each time, yet a revoke still fails the token on every node within a second, because each node
asks the store's tokens_version (moved on by every create and delete) at most every
TOKENS_RECHECK seconds and forgets its tokens when it changed."""

from __future__ import annotations

import pytest
import trio

from hotfn.access import auth as auth_module
from hotfn.access.auth import TOKENS_RECHECK, AuthError, Authenticator
from hotfn.models import hash_secret, new_token
from hotfn.store import open_store

IMAGE = "hotfn-test/conformance-python"


class CountingStore:
    """A store's token methods, counted, over a real store."""

    def __init__(self, store) -> None:
        self.store = store
        self.finds = 0
        self.versions = 0
        self.hold_find: trio.Event | None = None  # set: find_token waits for it

    async def find_token(self, digest):
        self.finds += 1
        token = await self.store.find_token(digest)
        if self.hold_find is not None:
            await self.hold_find.wait()
        return token

    async def tokens_version(self):
        self.versions += 1
        return await self.store.tokens_version()


@pytest.fixture
async def store(tmp_path):
    store = open_store(str(tmp_path / "tokens.db"))
    yield store
    await store.close()


async def test_the_store_moves_tokens_version_on_every_create_and_delete(store_location):
    store = open_store(store_location)
    try:
        before = await store.tokens_version()
        token, _ = new_token({"name": "t", "scope": "invoke"})
        await store.create_token(token)
        created = await store.tokens_version()
        assert created != before
        await store.delete_token(token.id)
        assert await store.tokens_version() not in (before, created)
    finally:
        await store.close()


async def test_a_token_is_read_from_the_store_once_while_its_version_stays(store):
    token, secret = new_token({"name": "t", "scope": "invoke", "apps": ["demo"]})
    await store.create_token(token)
    counting = CountingStore(store)
    now = [1000.0]
    auth = Authenticator(counting, admin_token=None, enabled=True, monotonic=lambda: now[0])
    for _ in range(100):
        who = await auth.principal(secret)
        assert (who.scope, who.apps, who.token_id) == ("invoke", ("demo",), token.id)
    assert (counting.finds, counting.versions) == (1, 1)
    # An unknown secret is remembered as unknown too (a flood of guesses reads the store once each).
    for _ in range(3):
        with pytest.raises(AuthError):
            await auth.principal("not-a-token-at-all-0123456789")
    assert counting.finds == 2
    # Past TOKENS_RECHECK the version is asked again; unchanged, nothing is read again.
    now[0] += TOKENS_RECHECK
    await auth.principal(secret)
    assert (counting.finds, counting.versions) == (2, 2)
    # Revoked (by another node: this one is not told), it fails once the version is asked.
    await store.delete_token(token.id)
    await auth.principal(secret)  # within TOKENS_RECHECK of the last ask: still the kept answer
    now[0] += TOKENS_RECHECK
    with pytest.raises(AuthError) as refused:
        await auth.principal(secret)
    assert refused.value.status == 401
    assert (counting.finds, counting.versions) == (3, 3)


async def test_a_lookup_that_straddles_a_revoke_is_not_kept(store):
    """A find_token that read the token before a revoke, and answers after the version check
    that saw the revoke, must not put the revoked token back in the cache."""
    token, secret = new_token({"name": "t", "scope": "invoke"})
    await store.create_token(token)
    counting = CountingStore(store)
    now = [1000.0]
    auth = Authenticator(counting, admin_token=None, enabled=True, monotonic=lambda: now[0])
    await auth._current_tokens()  # the version known, nothing kept yet
    counting.hold_find = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(auth.principal, secret)  # reads the token, then waits
        with trio.fail_after(10):
            while counting.finds == 0:
                await trio.sleep(0)
        await store.delete_token(token.id)
        now[0] += TOKENS_RECHECK
        await auth._current_tokens()  # sees the revoke: the cache is emptied
        counting.hold_find.set()  # the old read answers now (its call is let in: it began first)
    assert hash_secret(secret) not in auth._tokens
    with pytest.raises(AuthError):
        await auth.principal(secret)


async def test_the_cache_is_bounded(store, monkeypatch):
    monkeypatch.setattr(auth_module, "TOKEN_CACHE_SIZE", 10)
    auth = Authenticator(store, admin_token=None, enabled=True)
    for i in range(25):
        with pytest.raises(AuthError):
            await auth.principal(f"guess-number-{i:04d}-0123456789")
        assert len(auth._tokens) <= 10


@pytest.mark.docker
async def test_a_revoke_on_one_node_refuses_the_token_on_another_within_a_second(
        server_factory, images, store_location):
    one = await server_factory(db=store_location)
    two = await server_factory(db=store_location)  # another node on the same store
    await one.create_app("demo")
    await one.create_route(path="/p", image=IMAGE, format="hot", auth="token")
    reply = await one.req("POST", "/v1/tokens", json={"token": {"name": "t", "scope": "invoke",
                                                                 "apps": ["demo"]}})
    assert reply.status == 201, reply
    token = reply.json()["token"]
    headers = [("authorization", f"Bearer {token['secret']}")]
    with trio.fail_after(30):  # node two learns of the route through the change feed
        while (await two.call("demo", "/p", b"hi", headers=headers)).status != 200:
            await trio.sleep(0.05)
    for _ in range(20):  # answered from node two's cache now
        assert (await two.call("demo", "/p", b"hi", headers=headers)).status == 200
    assert (await one.req("DELETE", f"/v1/tokens/{token['id']}")).status == 200
    revoked = trio.current_time()
    assert (await one.call("demo", "/p", b"hi", headers=headers)).status == 401  # the revoking node: at once
    while True:
        sent = trio.current_time()
        reply = await two.call("demo", "/p", b"hi", headers=headers)
        if reply.status != 200:
            break
        assert sent - revoked < 1.0, "node two let the token in a second after its revoke"
    assert reply.status == 401, reply
    # And it stays refused.
    assert (await two.call("demo", "/p", b"hi", headers=headers)).status == 401
