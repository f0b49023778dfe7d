"""A stateful stand-in for Jira Cloud (OAuth 2.0 3LO + REST API v3 + webhooks), served on 127.0.0.1.

Split along its seams: ``oauth`` (grants, rotating tokens, sites), ``webhooks`` (registration, admin webhooks,
deliveries), ``sandbox`` (issues, search, transitions, comments, changelog, links and the HTTP routing that ties them
together), ``jql`` (the JQL subset), ``adf`` (schema validation) and ``common`` (what they share). ``sandbox``'s
docstring says how strict it is and why.
"""

from .adf import ADF_SCHEMA_PATH, adf_problem, adf_validator
from ..serving import QuietRequestHandler  # the tests' webhook receivers serve with it too
from .common import AUTOMATION_ACCOUNT, CONNECTOR_ACCOUNT, PERSON_ACCOUNT, USER_SCOPE
from .sandbox import JiraSandbox

__all__ = ["ADF_SCHEMA_PATH", "AUTOMATION_ACCOUNT", "CONNECTOR_ACCOUNT", "PERSON_ACCOUNT", "USER_SCOPE", "JiraSandbox",
           "QuietRequestHandler", "adf_problem", "adf_validator"]
