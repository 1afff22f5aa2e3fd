"""Event-source verification: every ``verify`` type checked as its provider documents it.

Standard Webhooks and Stripe events are signed (and cross-checked) with the providers' own
packages; GitHub and Slack with the worked examples of their documentation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from starlette.datastructures import Headers

from gateway.domain import Refusal
from gateway.errors import InvalidInput
from gateway.event_verify import (
    VERIFY_TYPES,
    BasicVerify,
    GithubVerify,
    HeaderVerify,
    HmacVerify,
    NoneVerify,
    SlackVerify,
    StandardWebhooksVerify,
    StripeVerify,
    Verify,
    convert_verify,
    decode_verify,
    default_event_id_path,
    redacted,
    verify,
)

NOW = 1_700_000_000
BODY = b'{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"amount":42}}}'
SW_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
SW_OLD = "whsec_" + base64.b64encode(b"o" * 24).decode()
STRIPE_SECRET = "whsec_test_" + "a" * 32
IP = "203.0.113.9"
MISSING = (401, "Authorization is required!")
WRONG = (403, "Authorization data is wrong!")
FIVE_THOUSAND_DIGITS = "1" * 5000
ARABIC_NOW = "".join(chr(0x0660 + int(d)) for d in str(NOW))
FULLWIDTH_NOW = "".join(chr(0xFF10 + int(d)) for d in str(NOW))


def request_headers(headers: dict[str, str]) -> Headers:
    """The headers as Starlette hands them over when they were sent as UTF-8 bytes."""
    return Headers(raw=[(k.lower().encode("latin-1"), v.encode()) for k, v in headers.items()])


def check(config: Verify, headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> Any:
    """``None`` or ``(status, message)`` of the refusal."""
    refusal = verify(config, request_headers(headers), body, IP, now)
    return None if refusal is None else (refusal.status, refusal.message)


# --- Standard Webhooks -----------------------------------------------------------------------


def sw_headers(
    secret: str = SW_SECRET, body: bytes = BODY, at: int = NOW, msg_id: str = "msg_1"
) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(at, tz=UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": signature}


SW = StandardWebhooksVerify(secret=SW_SECRET)


def test_standard_webhooks_signed_by_the_package_is_admitted() -> None:
    assert check(SW, sw_headers()) is None


def test_standard_webhooks_admitted_exactly_when_the_package_admits() -> None:
    now = int(datetime.now(tz=UTC).timestamp())
    headers = sw_headers(at=now)
    assert check(SW, headers, now=now) is None
    assert Webhook(SW_SECRET).verify(BODY, headers)["id"] == "evt_1"
    tampered = BODY.replace(b"42", b"43")
    assert check(SW, headers, tampered, now=now) == WRONG
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(SW_SECRET).verify(tampered, headers)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_webhooks_missing_header_is_401(name: str) -> None:
    headers = sw_headers()
    del headers[name]
    assert check(SW, headers) == MISSING


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("webhook-id", "msg_2"),  # the id is signed
        ("webhook-signature", "v1," + base64.b64encode(b"x" * 32).decode()),
        ("webhook-signature", "v1,%%%not-base64%%%"),
        ("webhook-signature", "v2,abc"),
        ("webhook-signature", "v1"),
        ("webhook-signature", " ".join(["v1,AAAA"] * 33)),
        ("webhook-timestamp", FIVE_THOUSAND_DIGITS),
        ("webhook-timestamp", ARABIC_NOW),
        ("webhook-timestamp", f"{NOW}.0"),
        ("webhook-timestamp", f"-{NOW}"),
        ("webhook-timestamp", FULLWIDTH_NOW),
    ],
)
def test_standard_webhooks_wrong_or_malformed_is_403(change: str, value: str) -> None:
    headers = sw_headers()
    headers[change] = value
    assert check(SW, headers) == WRONG


def test_standard_webhooks_one_byte_of_the_body_changed_is_403() -> None:
    assert check(SW, sw_headers(), BODY[:-1] + b" ") == WRONG


def test_standard_webhooks_other_secret_is_403() -> None:
    assert check(SW, sw_headers(secret=SW_OLD)) == WRONG


@pytest.mark.parametrize(
    ("skew", "admitted"), [(300, True), (-300, True), (301, False), (-301, False)]
)
def test_standard_webhooks_timestamp_tolerance_both_ways(skew: int, admitted: bool) -> None:
    headers = sw_headers(at=NOW + skew)
    assert (check(SW, headers) is None) is admitted


def test_standard_webhooks_tolerance_is_configurable() -> None:
    strict = StandardWebhooksVerify(secret=SW_SECRET, tolerance_seconds=10)
    assert check(strict, sw_headers(at=NOW - 11)) == WRONG
    assert check(strict, sw_headers(at=NOW - 10)) is None


def test_standard_webhooks_any_one_of_several_signatures_suffices() -> None:
    """A sender rotating its secret signs with the old and the new one."""
    now = int(datetime.now(tz=UTC).timestamp())
    headers = sw_headers(at=now)
    old = sw_headers(secret=SW_OLD, at=now)["webhook-signature"]
    headers["webhook-signature"] = f"v1a,xyz {old} {headers['webhook-signature']}"
    assert check(SW, headers, now=now) is None
    assert Webhook(SW_SECRET).verify(BODY, headers)["id"] == "evt_1"
    headers["webhook-signature"] = f"v1a,xyz {old}"
    assert check(SW, headers, now=now) == WRONG


def test_standard_webhooks_several_secrets_configured() -> None:
    both = StandardWebhooksVerify(secret=[SW_SECRET, SW_OLD])
    assert check(both, sw_headers(secret=SW_OLD)) is None
    assert check(both, sw_headers(secret=SW_SECRET)) is None
    other = "whsec_" + base64.b64encode(b"z" * 32).decode()
    assert check(both, sw_headers(secret=other)) == WRONG


def test_standard_webhooks_secret_without_padding_is_the_same_key() -> None:
    unpadded = "whsec_" + base64.b64encode(b"p" * 25).decode().rstrip("=")
    config = StandardWebhooksVerify(secret=unpadded)
    assert check(config, sw_headers(secret=unpadded)) is None


# --- Stripe ----------------------------------------------------------------------------------


def stripe_header(secret: str = STRIPE_SECRET, body: bytes = BODY, at: int = NOW) -> str:
    header: str = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=at
    )
    return header


STRIPE = StripeVerify(secret=STRIPE_SECRET)


def test_stripe_signed_by_the_package_is_admitted_and_the_package_agrees() -> None:
    header = stripe_header()
    assert check(STRIPE, {"Stripe-Signature": header}) is None
    assert stripe.WebhookSignature.verify_header(BODY, header, STRIPE_SECRET, tolerance=None)


def test_stripe_construct_event_on_an_admitted_event() -> None:
    now = int(datetime.now(tz=UTC).timestamp())
    body = b'{"id":"evt_9","object":"event","type":"payment_intent.succeeded","data":{}}'
    header = stripe_header(body=body, at=now)
    assert check(STRIPE, {"Stripe-Signature": header}, body, now=now) is None
    assert stripe.Webhook.construct_event(body, header, STRIPE_SECRET).id == "evt_9"


def test_stripe_key_is_the_whole_whsec_string() -> None:
    """Stripe keys the HMAC with ``whsec_…`` as given, not a decoded form of it."""
    mac = hmac.new(STRIPE_SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256)
    assert check(STRIPE, {"Stripe-Signature": f"t={NOW},v1={mac.hexdigest()}"}) is None
    stripped = STRIPE_SECRET.removeprefix("whsec_").encode()
    other = hmac.new(stripped, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert check(STRIPE, {"Stripe-Signature": f"t={NOW},v1={other}"}) == WRONG


def test_stripe_missing_header_is_401() -> None:
    assert check(STRIPE, {}) == MISSING
    assert check(STRIPE, {"Stripe-Signature": ""}) == MISSING


def test_stripe_one_byte_of_the_body_changed_is_403() -> None:
    header = stripe_header()
    assert check(STRIPE, {"Stripe-Signature": header}, BODY.replace(b"42", b"43")) == WRONG
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(BODY + b" ", header, STRIPE_SECRET, tolerance=None)


def test_stripe_other_secret_is_403() -> None:
    assert check(STRIPE, {"Stripe-Signature": stripe_header("whsec_other")}) == WRONG


@pytest.mark.parametrize(
    ("skew", "admitted"), [(300, True), (-300, True), (301, False), (-301, False)]
)
def test_stripe_timestamp_tolerance_both_ways(skew: int, admitted: bool) -> None:
    header = stripe_header(at=NOW + skew)
    assert (check(STRIPE, {"Stripe-Signature": header}) is None) is admitted


def test_stripe_any_of_several_v1_suffices() -> None:
    """While an endpoint secret is rolled, Stripe sends one ``v1`` per live secret."""
    good = stripe_header().split("v1=")[1]
    old = stripe_header("whsec_old").split("v1=")[1]
    header = f"t={NOW},v1={old},v0={'0' * 64},v1={good}"
    assert check(STRIPE, {"Stripe-Signature": header}) is None
    assert stripe.WebhookSignature.verify_header(BODY, header, STRIPE_SECRET, tolerance=None)


def test_stripe_several_secrets_configured() -> None:
    both = StripeVerify(secret=["whsec_new", STRIPE_SECRET])
    assert check(both, {"Stripe-Signature": stripe_header()}) is None
    assert check(both, {"Stripe-Signature": stripe_header("whsec_new")}) is None
    assert check(both, {"Stripe-Signature": stripe_header("whsec_gone")}) == WRONG


@pytest.mark.parametrize(
    "header",
    [
        f"t={FIVE_THOUSAND_DIGITS},v1={'0' * 64}",
        f"t={ARABIC_NOW},v1={'0' * 64}",
        f"t={NOW},t={NOW},v1={'0' * 64}",  # duplicate t
        f"t={NOW}",
        f"v1={'0' * 64}",
        "garbage",
        f"t={NOW},v1",
        f"t=-{NOW},v1={'0' * 64}",
        f"t={NOW}," + ",".join([f"v1={'0' * 64}"] * 40),
        "t=,v1=",
        "\uff54=1,v1=\u00e4",  # fullwidth t
    ],
)
def test_stripe_malformed_header_is_403(header: str) -> None:
    assert check(STRIPE, {"Stripe-Signature": header}) == WRONG


def test_stripe_duplicate_t_is_403_even_when_one_is_right() -> None:
    good = stripe_header()
    assert check(STRIPE, {"Stripe-Signature": f"t={NOW + 9},{good}"}) == WRONG


# --- GitHub ----------------------------------------------------------------------------------

GH_DOC_SECRET = "It's a Secret to Everybody"
GH_DOC_BODY = b"Hello, World!"
GH_DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
GITHUB = GithubVerify(secret=GH_DOC_SECRET)


def test_github_documented_example_is_admitted() -> None:
    """The test values of GitHub's "Validating webhook deliveries"."""
    assert check(GITHUB, {"X-Hub-Signature-256": GH_DOC_SIGNATURE}, GH_DOC_BODY) is None


def test_github_missing_header_is_401() -> None:
    assert check(GITHUB, {"X-Hub-Signature": "sha1=abc"}, GH_DOC_BODY) == MISSING


@pytest.mark.parametrize(
    "signature",
    [
        GH_DOC_SIGNATURE.removeprefix("sha256="),  # no prefix
        "sha1=" + GH_DOC_SIGNATURE.removeprefix("sha256="),
        GH_DOC_SIGNATURE[:-1] + "f",
        GH_DOC_SIGNATURE + "00",
        "sha256=" + "ä" * 64,
    ],
)
def test_github_wrong_signature_is_403(signature: str) -> None:
    assert check(GITHUB, {"X-Hub-Signature-256": signature}, GH_DOC_BODY) == WRONG


def test_github_one_byte_changed_or_other_secret_is_403() -> None:
    headers = {"X-Hub-Signature-256": GH_DOC_SIGNATURE}
    assert check(GITHUB, headers, b"Hello, World?") == WRONG
    assert check(GithubVerify(secret="another"), headers, GH_DOC_BODY) == WRONG
    assert check(GithubVerify(secret=["another", GH_DOC_SECRET]), headers, GH_DOC_BODY) is None


# --- Slack -----------------------------------------------------------------------------------

SLACK_DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_DOC_TIMESTAMP = 1531420618
SLACK_DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
SLACK = SlackVerify(signing_secret=SLACK_DOC_SECRET)


def slack_headers(
    stamp: int | str = SLACK_DOC_TIMESTAMP, signature: str = SLACK_DOC_SIGNATURE
) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": signature}


def slack_check(headers: dict[str, str], body: bytes = SLACK_DOC_BODY, skew: int = 0) -> Any:
    return check(SLACK, headers, body, now=SLACK_DOC_TIMESTAMP + skew)


def test_slack_documented_example_is_admitted() -> None:
    """The worked example of Slack's "Verifying requests from Slack"."""
    assert slack_check(slack_headers()) is None


@pytest.mark.parametrize("name", ["X-Slack-Request-Timestamp", "X-Slack-Signature"])
def test_slack_missing_header_is_401(name: str) -> None:
    headers = slack_headers()
    del headers[name]
    assert slack_check(headers) == MISSING


@pytest.mark.parametrize(
    ("skew", "admitted"), [(300, True), (-300, True), (301, False), (-301, False)]
)
def test_slack_timestamp_tolerance_both_ways(skew: int, admitted: bool) -> None:
    assert (slack_check(slack_headers(), skew=skew) is None) is admitted


@pytest.mark.parametrize(
    "headers",
    [
        slack_headers(SLACK_DOC_TIMESTAMP + 1),  # the timestamp is signed
        slack_headers(FIVE_THOUSAND_DIGITS),
        slack_headers(
            str(SLACK_DOC_TIMESTAMP).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
        ),
        slack_headers(signature=SLACK_DOC_SIGNATURE.replace("v0=", "v1=")),
        slack_headers(signature=SLACK_DOC_SIGNATURE[3:]),
        slack_headers(signature="v0=" + "ü" * 64),
    ],
)
def test_slack_wrong_or_malformed_is_403(headers: dict[str, str]) -> None:
    assert slack_check(headers) == WRONG


def test_slack_one_byte_changed_is_403() -> None:
    assert slack_check(slack_headers(), SLACK_DOC_BODY.replace(b"foobar", b"foobaz")) == WRONG


# --- hmac, header, basic, none ---------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_hmac_every_algorithm_and_encoding(algorithm: str, encoding: str) -> None:
    config = convert_verify(
        {
            "type": "hmac",
            "header": "X-Signature",
            "secret": "s3cret",
            "algorithm": algorithm,
            "encoding": encoding,
            "prefix": f"{algorithm}=",
        }
    )
    digest = hmac.new(b"s3cret", BODY, algorithm).digest()
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    assert check(config, {"X-Signature": f"{algorithm}={text}"}) is None
    assert check(config, {"X-Signature": f"{algorithm}={text}"}, BODY + b"\n") == WRONG
    assert check(config, {"X-Signature": text}) == WRONG  # prefix missing
    assert check(config, {"X-Other": text}) == MISSING


def test_hmac_hex_any_case_base64_exact() -> None:
    digest = hmac.new(b"k", BODY, hashlib.sha256).digest()
    hexed = HmacVerify(header="X-Sig", secret="k")
    assert check(hexed, {"X-Sig": digest.hex().upper()}) is None
    b64 = HmacVerify(header="X-Sig", secret="k", encoding="base64")
    assert check(b64, {"X-Sig": base64.b64encode(digest).decode().rstrip("=") + "!"}) == WRONG
    assert check(b64, {"X-Sig": "%%%"}) == WRONG


def test_header_shared_secret() -> None:
    config = HeaderVerify(header="X-Token", value="t0ken")
    assert check(config, {"x-token": "t0ken"}) is None
    assert check(config, {"X-Token": "t0ken "}) == WRONG
    assert check(config, {"X-Token": "tökén"}) == WRONG
    assert check(config, {}) == MISSING


def basic_auth(text: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(text).decode()}


def test_basic() -> None:
    config = BasicVerify(username="stripe", password="pa:ss")
    assert check(config, basic_auth(b"stripe:pa:ss")) is None
    assert check(config, basic_auth(b"stripe:pa:sS")) == WRONG
    assert check(config, basic_auth(b"Stripe:pa:ss")) == WRONG
    assert check(config, basic_auth(b"\xff\xfe")) == WRONG
    assert check(config, {"Authorization": "Basic ***"}) == WRONG
    assert check(config, {"Authorization": "Basic é"}) == WRONG
    refusal = verify(config, request_headers({}), BODY, IP, NOW)
    assert refusal is not None
    assert (refusal.status, refusal.headers) == (401, {"WWW-Authenticate": 'Basic realm="Webhook"'})
    assert check(config, {"Authorization": "Bearer x"}) == MISSING


IP_REFUSED = (403, "IP is not allowed to access the webhook!")


def test_none_admits_only_allowed_addresses() -> None:
    config = NoneVerify(allowed_ips=("203.0.113.0/24", "2001:db8::1"))
    assert verify(config, Headers({}), BODY, "203.0.113.200", NOW) is None
    assert verify(config, Headers({}), BODY, "2001:db8::1", NOW) is None
    for ip in ("198.51.100.1", None, "not-an-ip", "2001:db8::2"):
        refusal = verify(config, Headers({}), BODY, ip, NOW)
        assert refusal == Refusal(*IP_REFUSED)


def test_allowed_ips_are_checked_before_a_valid_signature() -> None:
    config = StripeVerify(secret=STRIPE_SECRET, allowed_ips=("10.0.0.0/8",))
    headers = request_headers({"Stripe-Signature": stripe_header()})
    assert verify(config, headers, BODY, "10.1.2.3", NOW) is None
    refusal = verify(config, headers, BODY, IP, NOW)
    assert refusal is not None
    assert (refusal.status, refusal.message) == IP_REFUSED


# --- never an exception ----------------------------------------------------------------------

ALL_CONFIGS: list[Verify] = [
    SW,
    STRIPE,
    GITHUB,
    SLACK,
    HmacVerify(header="X-Sig", secret="k", encoding="base64"),
    HmacVerify(header="X-Sig", secret="k", prefix="sha256="),
    HeaderVerify(header="X-Sig", value="a-long-shared-value"),
    BasicVerify(username="u", password="p"),
]
PROVIDER_HEADERS = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "stripe-signature",
    "x-hub-signature-256",
    "x-slack-request-timestamp",
    "x-slack-signature",
    "x-sig",
    "authorization",
]


@settings(max_examples=150, deadline=None)
@given(
    values=st.dictionaries(st.sampled_from(PROVIDER_HEADERS), st.text(max_size=300)),
    body=st.binary(max_size=200),
    now=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
)
def test_arbitrary_input_is_refused_never_raised(
    values: dict[str, str], body: bytes, now: float
) -> None:
    for config in ALL_CONFIGS:
        refusal = verify(config, values, body, IP, now)
        assert refusal is not None
        assert refusal.status in {401, 403}


def test_digits_python_would_parse_are_refused_when_not_ascii() -> None:
    """``int()`` reads Arabic-Indic and fullwidth digits; a signed timestamp must not."""
    for stamp in (ARABIC_NOW, FULLWIDTH_NOW):
        key = base64.b64decode(SW_SECRET.removeprefix("whsec_"))
        signed = hmac.new(key, f"msg_1.{stamp}.".encode() + BODY, hashlib.sha256).digest()
        sw = {**sw_headers(), "webhook-timestamp": stamp}
        sw["webhook-signature"] = "v1," + base64.b64encode(signed).decode()
        assert verify(SW, sw, BODY, IP, NOW) == Refusal(*WRONG)
        mac = hmac.new(STRIPE_SECRET.encode(), f"{stamp}.".encode() + BODY, hashlib.sha256)
        header = {"stripe-signature": f"t={stamp},v1={mac.hexdigest()}"}
        assert verify(STRIPE, header, BODY, IP, NOW) == Refusal(*WRONG)


# --- the declaration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "standardWebhooks", "secret": SW_SECRET}, SW),
        ({"type": "stripe", "secret": STRIPE_SECRET}, STRIPE),
        ({"type": "github", "secret": GH_DOC_SECRET}, GITHUB),
        ({"type": "slack", "signingSecret": SLACK_DOC_SECRET}, SLACK),
        (
            {"type": "hmac", "header": "X-Sig", "secret": "k", "encoding": "base64"},
            ALL_CONFIGS[4],
        ),
        (
            {"type": "header", "header": "X-Sig", "value": "a-long-shared-value"},
            ALL_CONFIGS[6],
        ),
        ({"type": "basic", "username": "u", "password": "p"}, ALL_CONFIGS[7]),
        (
            {"type": "none", "allowedIps": ["10.0.0.0/8"]},
            NoneVerify(allowed_ips=("10.0.0.0/8",)),
        ),
    ],
)
def test_decodes_from_camel_case_json_and_round_trips(
    raw: dict[str, Any], expected: Verify
) -> None:
    assert convert_verify(raw) == expected
    assert decode_verify(msgspec.json.encode(raw)) == expected
    assert decode_verify(msgspec.json.encode(expected)) == expected  # as the store keeps it
    assert raw["type"] in VERIFY_TYPES


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "none"}, "verify.allowedIps must list at least one network for type none"),
        ({"type": "none", "allowedIps": []}, "verify.allowedIps must list at least one"),
        ({"type": "none", "allowedIps": ["10.0.0.300"]}, "verify.allowedIps"),
        ({"type": "carrierPigeon"}, "verify: Invalid value 'carrierPigeon'"),
        ({"secret": STRIPE_SECRET}, "verify: Object missing required field `type`"),
        ({"type": "stripe"}, "`secret`"),
        ({"type": "stripe", "secret": "sk_live_123"}, "verify.secret must be a Stripe endpoint"),
        ({"type": "stripe", "secret": STRIPE_SECRET, "tolerance": 5}, "unknown field `tolerance`"),
        ({"type": "stripe", "secret": STRIPE_SECRET, "toleranceSeconds": 0}, "toleranceSeconds"),
        ({"type": "stripe", "secret": [STRIPE_SECRET] * 6}, "verify.secret must hold 1 to 5"),
        ({"type": "stripe", "secret": []}, "verify.secret must hold 1 to 5"),
        ({"type": "standardWebhooks", "secret": "whsec_%%%"}, "verify.secret must look like"),
        ({"type": "standardWebhooks", "secret": "whsec_YWJj"}, "verify.secret must look like"),
        (
            {"type": "standardWebhooks", "secret": base64.b64encode(b"k" * 32).decode()},
            "verify.secret must look like whsec_",
        ),
        ({"type": "github", "secret": ""}, "verify.secret must be 1 to"),
        ({"type": "slack", "secret": "x"}, "unknown field `secret`"),
        ({"type": "hmac", "header": "X Sig", "secret": "k"}, "verify.header must be an HTTP"),
        ({"type": "hmac", "header": "X-Sig", "secret": "k", "algorithm": "md5"}, "algorithm"),
        ({"type": "hmac", "header": "X-Sig", "secret": "k", "encoding": "b32"}, "encoding"),
        ({"type": "header", "header": "X-Sig", "value": ""}, "`$.value`"),
        ({"type": "basic", "username": "a:b", "password": "p"}, "verify.username"),
        (
            {"type": "basic", "username": "a", "password": "p", "allowedIps": "1.2.3.4"},
            "allowedIps",
        ),
    ],
)
def test_invalid_declarations_are_refused_naming_the_field(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("$", r"\$")):
        convert_verify(raw)


def test_not_json_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="verify is not valid JSON"):
        decode_verify(b"{")


@pytest.mark.parametrize("config", [*ALL_CONFIGS, StripeVerify(secret=[STRIPE_SECRET, "whsec_2"])])
def test_secrets_are_never_shown(config: Verify) -> None:
    secrets = [SW_SECRET, STRIPE_SECRET, GH_DOC_SECRET, SLACK_DOC_SECRET, "whsec_2", "k", "p"]
    secrets.append("a-long-shared-value")
    shown = [repr(config), str(config), repr(redacted(config)), repr([config])]
    shown.append(repr(dict(config.__rich_repr__())))
    for text in shown:
        assert "**********" in text
        for secret in secrets:
            assert repr(secret) not in text
    assert msgspec.json.encode(redacted(config)).count(b"**********") == 1


def test_redacted_keeps_everything_else() -> None:
    assert redacted(StripeVerify(secret=STRIPE_SECRET, allowed_ips=("10.0.0.0/8",))) == {
        "type": "stripe",
        "secret": "**********",
        "toleranceSeconds": 300,
        "allowedIps": ("10.0.0.0/8",),
    }


@pytest.mark.parametrize(
    ("config", "path"),
    [
        (SW, "header:webhook-id"),
        (STRIPE, "id"),
        (GITHUB, "header:X-GitHub-Delivery"),
        (SLACK, "event_id"),
        (ALL_CONFIGS[4], None),
        (ALL_CONFIGS[6], None),
        (ALL_CONFIGS[7], None),
        (NoneVerify(allowed_ips=("10.0.0.1",)), None),
    ],
)
def test_default_event_id_path(config: Verify, path: str | None) -> None:
    assert default_event_id_path(config) == path
