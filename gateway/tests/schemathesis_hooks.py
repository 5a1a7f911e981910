"""Schemathesis hooks for gateway/tests/schemathesis.rs (loaded with SCHEMATHESIS_HOOKS).

`positive_data_acceptance` (Schemathesis's "schema-valid request rejected") fails any
request the document allows that the server answers 400 or 422 (or any status outside
2xx, 3xx, 401, 403, 404, 409, 429). A few rules cannot be stated in an OpenAPI
document: they depend on the establishment's state or on the clock, or tie two fields
together in a way the document's generators do not follow. Each is stated in the
document's prose instead, and listed in `STATED_RULES`: a 422 with exactly that error
code, on a field and with a message matching the rule, on exactly that operation, is
the rule at work, not a looser document. Every other rejection of a schema-valid
request still fails, through `positive_data_acceptance_beyond_stated_rules`, which the
test runs in place of the built-in check (`--exclude-checks positive_data_acceptance`).

The live feed's upgrade answers 101 Switching Protocols, which is its success.
"""

import json
import re

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

# A booking's, a move's or a checkout's start: where it falls against now, the
# establishment's notice, horizon and slot grid, the staff member's hours and time
# off, and which staff perform the service (all state, not shape).
_START = [
    ("too_soon", "start", ""),
    ("too_far", "start", ""),
    ("not_on_grid", "start", ""),
    ("outside_hours", "start", ""),
    ("staff_cannot_perform", "staff_id", ""),
    ("invalid_request", "start", "supported range"),
]
# Latitude and longitude come together (two fields).
_PAIRED = [("invalid_request", "latitude|longitude", "go together")]
# A search's parameters: a point is lat and lon together, a radius needs a point, a
# service filter needs a day, a cursor comes from the same search; a text has at most
# 8 words and a letter or digit of any script (the pattern names the Latin ones).
_SEARCH = [
    ("invalid_request", "lat|lon", "needs"),
    ("invalid_request", "radius_km", "needs lat and lon"),
    ("invalid_request", "service", "goes with free_on"),
    ("invalid_request", "cursor", "cursor"),
    ("invalid_request", "q|service", "at most 8 words|letter or digit"),
]
# Working hours: each range ends after it starts, ranges in order without overlap, and
# 24:00 only as an end (an order across array items).
_HOURS = [("invalid_request", r"hours\.(mon|tue|wed|thu|fri|sat|sun)\[\d+\]", "")]

# (method, path) -> [(code, field pattern, message pattern)]: the rules the document
# states in words.
STATED_RULES = {
    ("POST", "/v1/establishments/{id}/bookings"): _START,
    ("POST", "/v1/establishments/{id}/bookings/{booking_id}/reschedule"): _START,
    ("POST", "/v1/establishments/{id}/checkouts"): _START,
    ("GET", "/v1/establishments/{id}/availability"): [
        ("staff_cannot_perform", "staff_id", ""),
    ],
    ("POST", "/v1/establishments/{id}/queue"): [("staff_cannot_perform", "staff_id", "")],
    ("POST", "/v1/establishments"): _PAIRED,
    ("PATCH", "/v1/establishments/{id}"): _PAIRED,
    ("GET", "/v1/establishments"): _SEARCH,
    ("GET", "/v1/admin/establishments"): _SEARCH,
    ("POST", "/v1/establishments/{id}/staff"): _HOURS,
    ("PUT", "/v1/establishments/{id}/staff/{staff_id}/hours"): _HOURS,
    # The end after the start (two fields), at most 366 days apart, both in 1970-2199.
    ("POST", "/v1/establishments/{id}/staff/{staff_id}/time-off"): [
        ("invalid_request", "start|end", ""),
    ],
    # A deposit's or a fee's amount is checked against nothing but itself; the policy's
    # shapes are all in the document. Nothing listed.
}


def _rejection(response):
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return None
    return (error.get("code") or "", error.get("field") or "", error.get("message") or "")


def _stated(case, response):
    rules = STATED_RULES.get((case.operation.method.upper(), case.operation.path), [])
    rejection = _rejection(response)
    if response.status_code != 422 or rejection is None:
        return False
    code, field, message = rejection
    return any(
        code == rule_code and re.fullmatch(fields, field) and re.search(messages, message)
        for rule_code, fields, messages in rules
    )


def _upgraded(case, response):
    return response.status_code == 101 and case.operation.path.endswith("/live")


@schemathesis.check
def positive_data_acceptance_beyond_stated_rules(ctx, response, case):
    """`positive_data_acceptance`, less the rules listed in `STATED_RULES`."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except AssertionError:
        if _stated(case, response) or _upgraded(case, response):
            return None
        raise
