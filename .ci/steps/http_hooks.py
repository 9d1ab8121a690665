"""Schemathesis hooks for .ci/steps/http.sh, loaded through SCHEMATHESIS_HOOKS.

1. Real targets. Generated UUIDs never name a website of the demo server, so every bulk
   request would end in `target_not_found` and its response would hold no invitation or batch
   id for the document's links to follow. Half of the valid (positive) bulk requests, chosen
   by a hash of the body, get distinct ids of the websites or groups the demo server seeds
   instead; in the stateful phase, whose links start from what email mode creates, all of
   them do, in email mode. The request stays valid for the schema; negative cases are left
   alone, so what they break stays broken.
2. Waiting out the resend interval, a few times. A stateful chain resends a batch
   milliseconds after the bulk request that created it, which the server refuses by design
   (429 `resend_too_soon`; http.sh runs it with --resend-interval 1). Before the first
   MAX_WAITS such resends the hook waits until the batch is a second old, as a person
   clicking "resend" would, so resend is also seen succeeding; every later one is sent at
   once and answered 429. At most MAX_WAITS seconds in all.
3. A call log. Every call to a lifecycle or access route is written to the file
   INVITES_HTTP_CALL_LOG names, one tab-separated line each: phase, operation, status.
   http.sh counts from it how many stateful calls reached those routes with ids that exist.
4. Real targets for the access routes. A generated website or group id never exists, so the
   member lists would only ever answer 404 (and the membership changes `target_not_found`).
   Outside the stateful phase (whose links carry real ids), half of the valid calls to them,
   chosen by a hash of the path, get a website or group id the demo server seeds; the user
   id stays generated (the demo seeds no user; the stateful phase follows the member lists'
   links to real ones).
"""

import hashlib
import json
import os
import time
import email
import email.policy
import re

import schemathesis
from schemathesis import GenerationMode

# The ids examples/server.rs seeds: five websites and two groups.
SITES = [f"00000000-0000-0000-0000-00000000517{i}" for i in range(5)]
GROUPS = ["00000000-0000-0000-0000-000000006401", "00000000-0000-0000-0000-000000006402"]

BULK = "POST /invites/bulk"
RESEND = "POST /invitation-batches/{id}/resend"
RESEND_INTERVAL = 1.0  # seconds; examples/server.rs --resend-interval in http.sh
MAX_WAITS = 3
LIFECYCLE = {
    "POST /invites/preview",
    "POST /invites/accept",
    "DELETE /invitations/{id}",
    "POST /invitation-batches/{id}/resend",
    "GET /invitation-batches/{id}",
}
# The access routes whose `id` names a website or a group: which ids to give them.
ACCESS_TARGETS = {
    "GET /websites/{id}/members": SITES,
    "PUT /websites/{id}/members/{user_id}": SITES,
    "DELETE /websites/{id}/members/{user_id}": SITES,
    "GET /groups/{id}/members": GROUPS,
    "PUT /groups/{id}/members/{user_id}": GROUPS,
    "DELETE /groups/{id}/members/{user_id}": GROUPS,
}
LOGGED = LIFECYCLE | set(ACCESS_TARGETS) | {"GET /users/{id}/websites"}


def _positive(case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def _digest(value) -> bytes:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).digest()


def _real_target(case):
    """A demo website or group as the `id` of half of the valid access calls (see 4.)."""
    known = ACCESS_TARGETS[case.operation.label]
    params = case.path_parameters
    if not isinstance(params, dict) or case.meta.phase.name.value == "stateful":
        return case
    digest = _digest(params)
    if digest[0] % 2:
        return case
    case.path_parameters = {**params, "id": known[digest[1] % len(known)]}
    return case


TOKEN_ROUTES = {"POST /invites/preview", "POST /invites/accept"}


def _mailed_tokens():
    """The accept tokens of the mails the demo server wrote (newest first): the only place a
    token exists, as for a real invitee. `INVITES_HTTP_MAIL_DIR` is its mail folder."""
    folder = os.environ.get("INVITES_HTTP_MAIL_DIR")
    if not folder or not os.path.isdir(folder):
        return []
    paths = sorted(
        (os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".eml")),
        key=os.path.getmtime,
        reverse=True,
    )
    tokens = []
    for path in paths:
        with open(path, "rb") as f:
            message = email.message_from_bytes(f.read(), policy=email.policy.default)
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                tokens += re.findall(r"token=([A-Za-z0-9_-]+)", part.get_content())
    return tokens


_token_calls = 0


def _real_token(case):
    """A token from a mail as the body of half of the valid preview and accept calls, so
    those routes are seen answering 200, not only 404."""
    if not isinstance(case.body, dict):
        return case
    global _token_calls
    _token_calls += 1
    tokens = _mailed_tokens()
    # Every other call, counted (the generated bodies repeat: a digest of them could pick
    # the same side every time).
    if not tokens or _token_calls % 2:
        return case
    # The newest mail's token: an older one may have been replaced by a resend since.
    case.body = {"token": tokens[0]}
    return case


@schemathesis.hook
def map_case(context, case):
    if not _positive(case):
        return case
    label = case.operation.label
    if label in ACCESS_TARGETS:
        return _real_target(case)
    if label in TOKEN_ROUTES:
        return _real_token(case)
    if label != BULK or not isinstance(case.body, dict):
        return case
    body = case.body
    digest = _digest(body)
    stateful = case.meta.phase.name.value == "stateful"
    if digest[0] % 2 and not stateful:
        return case
    for field, known in (("website_ids", SITES), ("group_ids", GROUPS)):
        ids = body.get(field)
        if isinstance(ids, list) and 1 <= len(ids) <= len(known):
            # A rotation of the known ids, as long as the generated list: distinct, real.
            start = digest[1] % len(known)
            rotated = known[start:] + known[:start]
            body = {**body, field: rotated[: len(ids)]}
            if stateful:
                # The links follow what email mode creates: a batch and its invitations.
                body["invite_method"] = "email"
            case.body = body
            break
    return case


# Batch id -> when it was last sent (monotonic seconds), from the responses seen.
_sent_at = {}
_waits = 0


@schemathesis.hook
def before_call(context, case, kwargs):
    global _waits
    if case.operation.label != RESEND or _waits >= MAX_WAITS:
        return
    sent = _sent_at.get(str((case.path_parameters or {}).get("id")))
    if sent is None:
        return
    wait = sent + RESEND_INTERVAL + 0.1 - time.monotonic()
    if wait > 0:
        _waits += 1
        time.sleep(wait)


def _note_sent(case, response):
    if response.status_code != 200 or case.operation.label not in (BULK, RESEND):
        return
    try:
        batch = (response.json().get("email") or {}).get("batch_id")
    except ValueError:
        return
    if batch:
        _sent_at[batch] = time.monotonic()


@schemathesis.hook
def after_call(context, case, response):
    _note_sent(case, response)
    path = os.environ.get("INVITES_HTTP_CALL_LOG")
    label = case.operation.label
    if not path or label not in LOGGED:
        return
    phase = case.meta.phase.name.value if case.meta is not None else "?"
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{phase}\t{label}\t{response.status_code}\n")
