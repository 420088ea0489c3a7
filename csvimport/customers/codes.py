"""The customer file's issue codes (SPEC section 11), added to the shared issue catalogue.

The reports, counts and ``IssueBuilder`` messages all look codes up in ``issues.CODES``; the
customer codes join it here (never replacing a users' code) so that one catalogue serves both
kinds of file. Each fix tells the partner what to do; ``FIX`` is phrased after the colon of
"<Column> '<value>' <what>: <fix>.".
"""

from __future__ import annotations

from csvimport import issues
from csvimport.model import Severity

# code -> (severity, what is wrong, phrased after "<Header> '<value>'")
CODES: dict[str, tuple[Severity, str]] = {
    "invalid_country": ("error", "is not an ISO 3166 country code"),
    "unknown_template": ("error", "is not a loaded onboarding template"),
    "unknown_package": ("error", "names a package that does not exist"),
    "package_dependency": ("error", "orders an add-on without the package it needs"),
    "field_too_long": ("error", "is too long"),
    "invalid_company_name": ("error", "contains a character that is not allowed"),
    "duplicate_external_id": ("error", "appears more than once in the file"),
    "location_not_confirmed": ("error", "does not confirm a Webex-supported location"),
    "unknown_org": ("error", "is not a known customer organisation"),
    "org_already_managed": ("error", "is already managed as another customer"),
    "trial_org_not_supported": ("error", "is a trial organisation"),
    "package_downgrade": ("warning", "drops a package the customer has"),
    # Beyond the SPEC's list, for cells it is silent about:
    "invalid_external_id": ("error", "cannot be an organisation id"),
    "invalid_quantity": ("error", "is not a whole number of at least 1"),
    "invalid_time_zone": ("error", "is not a time zone"),
    "org_id_taken": ("error", "is already the id of an organisation"),
    "org_not_ready": ("error", "is not provisioned yet"),
}

FIX: dict[str, str] = {
    "missing_required_field": "fill it in",
    "invalid_email": "enter the administrator's address, like admin@company.com",
    "invalid_country": "enter the two-letter ISO 3166 code of the headquarters, e.g. DE or DK",
    "unknown_template": "enter the Provisioning ID or name of a template ('templates list'), "
    "or load the template first with 'templates load'",
    "invalid_boolean": "enter TRUE once you have checked that the headquarters is in a "
    "Webex-supported location",
    "field_too_long": "shorten it",
    "invalid_company_name": "remove the '%' sign",
    "duplicate_external_id": "give each customer its own External Customer ID, or merge the rows",
    "location_not_confirmed": "check that the headquarters is in a Webex-supported location, "
    "then set it to TRUE",
    "invalid_external_id": "use letters, digits, '.', '_' or '-' (at most 200 characters)",
    "invalid_quantity": "enter the package's limit as a whole number such as 50, or leave it "
    "blank for no limit",
    "invalid_time_zone": "enter an IANA time zone such as Europe/Berlin",
}


def register() -> None:
    """Add the customer codes to ``issues.CODES`` (idempotent; users' codes win)."""
    for code, entry in CODES.items():
        issues.CODES.setdefault(code, entry)


register()
