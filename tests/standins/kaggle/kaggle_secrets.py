"""Stand-in for Kaggle's ``kaggle_secrets`` (the notebook editor's Add-ons > Secrets).

Follows Kaggle/docker-python patches/kaggle_secrets.py at commit 78aaa43
(2026-08-12; the file last changed in 823af9a): ``UserSecretsClient()``
builds a KaggleWebClient (CredentialError without the kernel's token);
``get_secret(label)`` raises ValidationError("Label must be non-empty.")
for an empty label, POSTs {"Label": label} to
/requests/GetUserSecretByLabelRequest, and returns the answer's ``secret``
(BackendError when the answer has none). A label that is not attached to
the notebook is an unsuccessful answer from the service, which the client
raises as BackendError("Unexpected response from the service. Response:
{...'errors': [...]}."); the service's error text is not in the client's
source, so the loopback service stand-in uses the one Kaggle's own tests
use ("No user secrets exist for kernel").
"""

from __future__ import annotations

from kaggle_web_client import BackendError, CredentialError, KaggleWebClient  # noqa: F401


class ValidationError(Exception):
    pass


class NotFoundError(Exception):
    pass


class UserSecretsClient:
    GET_USER_SECRET_ENDPOINT = "/requests/GetUserSecretRequest"
    GET_USER_SECRET_BY_LABEL_ENDPOINT = "/requests/GetUserSecretByLabelRequest"

    def __init__(self):
        self.web_client = KaggleWebClient()

    def get_secret(self, label) -> str:
        if label is None or len(label) == 0:
            raise ValidationError("Label must be non-empty.")
        answer = self.web_client.make_post_request({"Label": label}, self.GET_USER_SECRET_BY_LABEL_ENDPOINT)
        if "secret" not in answer:
            raise BackendError(f"Unexpected response from the service. Response: {answer}")
        return answer["secret"]
