"""Kubernetes documents -> the native config, split by Gateway API object:

- objects.py: status lines, the objects being translated, reading documents, Service references;
- gateway.py: Gateway listeners (HTTPS ones with their Secrets) and the hostname rules of attachment;
- httproute.py: HTTPRoute rules, matches, backends, timeouts and parentRefs -> native routes;
- policy.py: AgentgatewayPolicy -> the jwtAuth (checked by validate.py's own checks) and authorization
  (kube_authz.py) of its targets;
- translation.py: the entry point, putting them together into native binds.
"""
from .objects import (ACCEPTED, CONFLICTED, GATEWAY_CLASS, INVALID, NO_MATCHING_LISTENER_HOSTNAME,
                      NO_MATCHING_PARENT, NOT_ALLOWED_BY_LISTENERS, TARGET_NOT_FOUND, ObjectStatus, PolicyBinding,
                      Translation, service_address)
from .policy import UNSUPPORTED_POLICY_SPEC, UNSUPPORTED_TRAFFIC
from .translation import translate, translate_documents

__all__ = ["ACCEPTED", "CONFLICTED", "GATEWAY_CLASS", "INVALID", "NO_MATCHING_LISTENER_HOSTNAME",
           "NO_MATCHING_PARENT", "NOT_ALLOWED_BY_LISTENERS", "TARGET_NOT_FOUND", "UNSUPPORTED_POLICY_SPEC",
           "UNSUPPORTED_TRAFFIC", "ObjectStatus", "PolicyBinding", "Translation", "service_address", "translate",
           "translate_documents"]
