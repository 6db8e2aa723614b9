"""Kubernetes documents -> the native config (Gateway, HTTPRoute, AgentgatewayPolicy); see translation.py."""
from .translation import (ACCEPTED, CONFLICTED, INVALID, NO_MATCHING_LISTENER_HOSTNAME, NO_MATCHING_PARENT,
                          NOT_ALLOWED_BY_LISTENERS, TARGET_NOT_FOUND, UNSUPPORTED_POLICY_SPEC, UNSUPPORTED_TRAFFIC,
                          ObjectStatus, PolicyBinding, Translation, service_address, translate)

__all__ = ["ACCEPTED", "CONFLICTED", "INVALID", "NO_MATCHING_LISTENER_HOSTNAME", "NO_MATCHING_PARENT",
           "NOT_ALLOWED_BY_LISTENERS", "TARGET_NOT_FOUND", "UNSUPPORTED_POLICY_SPEC", "UNSUPPORTED_TRAFFIC",
           "ObjectStatus", "PolicyBinding", "Translation", "service_address", "translate"]
