"""The appliance's exceptions; each message says what a person can do."""
from __future__ import annotations

from edge.core.errors import BundleRefused, CoreError  # noqa: F401  (BundleRefused: edge.core.release)


class ApplianceError(CoreError):
    pass


class UpdateFailed(ApplianceError):
    """The new version did not become healthy; the old one was put back."""


class ProvisioningError(ApplianceError):
    """The boot partition's provisioning file is missing, unreadable or wrong."""
