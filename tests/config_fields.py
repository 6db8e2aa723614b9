"""What each config field does, and the test that shows it: the table tests/unit/test_config_fields.py holds the
model to.

Every field path of the native config (`binds[].listeners[].routes[].policies.timeout.requestTimeout`) and of
the Kubernetes objects agw reads (`HTTPRoute spec.rules[].timeouts.request`) has one entry:

- `effect(tests...)`: the tests that prove its observable effect: an e2e test through the real proxy, or a unit
  test where the effect is a unit's behaviour (a policy's verdict, a translation into the native config whose
  own fields are proven here, a validation refusal of a bad value);
- `refused(tests...)`: agw does not honour it, validation refuses it with its path, and the tests prove that.

There is no third kind: a setting agw accepts and ignores is what this table exists to prevent.

Structs that appear at several places (a `jwtAuth` on a listener and on a route, `jwks` in the single-provider
shape and in `providers[]`) are listed once, relative to the Struct, and placed at each path with `under()`.
A listener's policies are the same Structs, merged whole into each of its routes that sets none of that kind
(agw/config/compile.py merge_policies), so their entries are the route's plus the test of that merge.
"""
# ruff: noqa: E501  (a table: an entry reads best on its line)
from __future__ import annotations

EFFECT = "effect"
REFUSED = "refused"

Entry = tuple[str, tuple[str, ...]]


def effect(*tests: str) -> Entry:
    return EFFECT, tests


def refused(*tests: str) -> Entry:
    return REFUSED, tests


def under(prefix: str, table: dict[str, Entry], *also: str) -> dict[str, Entry]:
    """`table` (paths relative to a Struct, "" = the Struct's own field) placed at `prefix`; `also` are tests
    added to each entry (what makes the Struct apply at this place)."""
    out = {}
    for rel, (verdict, tests) in table.items():
        path = prefix if not rel else f"{prefix}.{rel}" if not rel.startswith("[") else prefix + rel
        out[path] = (verdict, tests + also)
    return out


UNIT = "tests/unit"
E2E = "tests/e2e"
LOADER = f"{UNIT}/test_config_loader.py"
CHECK = f"{UNIT}/test_check.py"
POLICY = f"{UNIT}/test_jwt_policy.py"
FETCH = f"{UNIT}/test_jwt_jwks_fetch.py"
KUBE = f"{UNIT}/test_kube.py"
EFFECTS = f"{UNIT}/test_config_effects.py"
JWT_E2E = f"{E2E}/test_jwt_e2e.py"
PROXY = f"{E2E}/test_proxy.py"
HOSTILE = f"{E2E}/test_hostile_http.py"
TIMEOUT = f"{E2E}/test_request_timeout.py"
OPS = f"{E2E}/test_operations.py"
E2E_EFFECTS = f"{E2E}/test_config_effects.py"
GUIDE = f"{E2E}/test_guide_yaml.py"
WS = f"{E2E}/test_websocket.py"
AUTHZ = f"{UNIT}/test_authz.py"
KUBE_AUTHZ = f"{UNIT}/test_kube_authz.py"
AUTHZ_E2E = f"{E2E}/test_authz_e2e.py"
TLS = f"{E2E}/test_tls.py"
TLS_EDGE = f"{E2E}/test_tls_edge.py"
MTLS = f"{E2E}/test_tls_reload_mtls.py"


# --- native: the Structs that appear at several places -------------------------------------------------------

JWKS: dict[str, Entry] = {
    "": effect(f"{JWT_E2E}::test_password_grant_token_passes_and_the_backend_never_sees_it"),
    "url": effect(f"{JWT_E2E}::test_password_grant_token_passes_and_the_backend_never_sees_it",
                  f"{LOADER}::test_jwt_single_provider_problems"),
    "file": effect(f"{JWT_E2E}::test_inline_and_file_jwks", f"{JWT_E2E}::test_file_jwks_relative_to_the_config_file",
                   f"{CHECK}::test_a_missing_jwks_file_is_one_invalid_verdict_for_its_route"),
    "inline": effect(f"{JWT_E2E}::test_inline_and_file_jwks", f"{POLICY}::test_bad_inline_and_file_jwks_are_config_errors"),
    "pem": effect(f"{E2E}/test_idp_e2e.py::test_a_pem_file_of_a_public_key_and_a_certificate",
                  f"{UNIT}/test_jwt_pem_x5c.py::test_pem_public_keys_and_certificates_of_every_family",
                  f"{UNIT}/test_jwt_pem_x5c.py::test_pem_files_with_nothing_usable_are_config_errors"),
    "discovery": effect(f"{E2E}/test_idp_e2e.py::test_explicit_discovery_in_the_single_provider_shape",
                        f"{UNIT}/test_jwt_discovery.py::test_a_policy_rediscovers_at_each_refresh",
                        f"{UNIT}/test_jwt_discovery.py::test_discovery_needs_an_issuer_url_and_excludes_the_other_sources"),
    "cacheDuration": effect(f"{FETCH}::test_background_refresh_picks_up_new_keys",
                            f"{LOADER}::test_jwt_single_provider_problems"),
    "caCertificates": effect(f"{FETCH}::test_https_with_a_configured_ca"),
    "fetchTimeout": effect(f"{FETCH}::test_size_limit_and_timeout_and_chunked_bodies",
                           f"{UNIT}/test_worker_reload.py::test_reload_fetches_a_new_url_first_and_carries_an_old_one_over"),
    "maxBytes": effect(f"{FETCH}::test_size_limit_and_timeout_and_chunked_bodies",
                       f"{E2E}/test_failing_idp.py::test_a_failing_idp_after_start_costs_valid_tokens_nothing"),
}

VALIDATION_OPTIONS: dict[str, Entry] = {
    "": effect(f"{POLICY}::test_required_claims_and_audiences_per_provider"),
    "requiredClaims": effect(f"{POLICY}::test_required_claims_and_audiences_per_provider",
                             f"{POLICY}::test_every_claim_config_accepts_as_required_is_enforced",
                             f"{POLICY}::test_required_iat_refuses_a_token_without_it",
                             f"{LOADER}::test_jwt_single_provider_problems"),
}

IDP_E2E = f"{E2E}/test_idp_e2e.py"
PROFILES = f"{UNIT}/test_jwt_profiles.py"

# Token profiles (issue 18): on each provider, and on jwtAuth in the single-provider shape.
PROFILE: dict[str, Entry] = {
    "allowedTypes": effect(f"{IDP_E2E}::test_allowed_types_admit_at_jwt_and_refuse_id_tokens",
                           f"{PROFILES}::test_allowed_types_accepts_at_jwt_in_any_spelling_and_refuses_id_tokens"),
    "maxLifetime": effect(f"{IDP_E2E}::test_max_lifetime_bounds_exp_minus_iat",
                          f"{PROFILES}::test_max_lifetime_bounds_exp_minus_iat_and_needs_both"),
    "subjects": effect(f"{IDP_E2E}::test_subjects_exact_prefix_and_regex",
                       f"{PROFILES}::test_providers_of_one_issuer_with_different_profiles"),
    "subjects[].exact": effect(f"{IDP_E2E}::test_subjects_exact_prefix_and_regex"),
    "subjects[].prefix": effect(f"{IDP_E2E}::test_subjects_exact_prefix_and_regex"),
    "subjects[].regex": effect(f"{IDP_E2E}::test_subjects_exact_prefix_and_regex",
                               f"{PROFILES}::test_bad_profile_settings_are_refused_with_their_path"),
    "requiredScopes": effect(f"{IDP_E2E}::test_required_scopes_pass_or_answer_403_insufficient_scope",
                             f"{PROFILES}::test_required_scopes_from_scope_or_scp_else_403_insufficient_scope"),
}

PROVIDER: dict[str, Entry] = {
    **PROFILE,
    "issuer": effect(f"{JWT_E2E}::test_two_providers_with_two_issuers_on_one_route",
                     f"{UNIT}/test_jwt_hostile.py::test_hostile_token_gets_its_reason"),
    "audiences": effect(f"{POLICY}::test_required_claims_and_audiences_per_provider",
                        f"{JWT_E2E}::test_audience_array_overlap_and_optional_mode_leaves_other_schemes_alone"),
    **under("jwks", JWKS, f"{JWT_E2E}::test_two_providers_with_two_issuers_on_one_route",
            f"{E2E}/test_idp_e2e.py::test_a_provider_given_by_its_issuer_alone_finds_its_keys_by_discovery"),
    **under("jwtValidationOptions", VALIDATION_OPTIONS),
}

JWT_AUTH: dict[str, Entry] = {
    "": effect(f"{JWT_E2E}::test_without_a_token_the_exact_401"),
    **PROFILE,
    "mode": effect(f"{JWT_E2E}::test_optional_mode", f"{JWT_E2E}::test_permissive_mode",
                   f"{POLICY}::test_strict_requires_a_token", f"{LOADER}::test_jwt_mode_and_shapes"),
    "location": effect(f"{JWT_E2E}::test_token_in_a_query_parameter_is_removed_before_the_backend"),
    "location.header": effect(f"{JWT_E2E}::test_scheme_is_case_insensitive_and_a_custom_header_location"),
    "location.header.name": effect(f"{JWT_E2E}::test_scheme_is_case_insensitive_and_a_custom_header_location"),
    "location.header.prefix": effect(f"{POLICY}::test_custom_header_location_without_prefix",
                                     f"{JWT_E2E}::test_scheme_is_case_insensitive_and_a_custom_header_location"),
    "location.queryParameter": effect(f"{JWT_E2E}::test_token_in_a_query_parameter_is_removed_before_the_backend"),
    "location.queryParameter.name": effect(
        f"{JWT_E2E}::test_token_in_a_query_parameter_is_removed_before_the_backend",
        f"{POLICY}::test_query_parameter_location_removes_the_parameter"),
    "location.cookie": effect(f"{JWT_E2E}::test_token_in_a_cookie_is_removed_before_the_backend"),
    "location.cookie.name": effect(f"{JWT_E2E}::test_token_in_a_cookie_is_removed_before_the_backend",
                                   f"{POLICY}::test_cookie_location_removes_the_cookie"),
    "issuer": effect(f"{JWT_E2E}::test_bad_claims_are_refused_with_their_reason", f"{LOADER}::test_jwt_mode_and_shapes"),
    "audiences": effect(f"{JWT_E2E}::test_audience_array_overlap_and_optional_mode_leaves_other_schemes_alone",
                        f"{JWT_E2E}::test_bad_claims_are_refused_with_their_reason"),
    **under("jwks", JWKS),
    **under("jwtValidationOptions", VALIDATION_OPTIONS),
    "providers": effect(f"{JWT_E2E}::test_two_providers_with_two_issuers_on_one_route",
                        f"{LOADER}::test_jwt_mode_and_shapes"),
    **under("providers[]", PROVIDER),
    "clockSkew": effect(f"{EFFECTS}::test_clock_skew_admits_a_token_that_expired_within_it",
                        f"{JWT_E2E}::test_cached_token_still_expires"),
    "forwardToken": effect(f"{JWT_E2E}::test_forward_token_keeps_authorization"),
    "closeOnTokenExpiry": effect(f"{WS}::test_close_on_token_expiry"),
    "claimsToHeaders": effect(f"{JWT_E2E}::test_claims_to_headers_strips_client_sent_copies"),
    "claimsToHeaders[].claim": effect(f"{JWT_E2E}::test_claims_to_headers_strips_client_sent_copies",
                                      f"{POLICY}::test_claims_to_headers_with_nested_and_literal_dotted_claims"),
    "claimsToHeaders[].header": effect(f"{JWT_E2E}::test_claims_to_headers_strips_client_sent_copies"),
    "maxTokenBytes": effect(f"{EFFECTS}::test_max_token_bytes_bounds_the_token"),
    "cache": effect(f"{POLICY}::test_cache_is_bounded_by_entries_and_bytes"),
    "cache.enabled": effect(f"{POLICY}::test_cache_can_be_disabled"),
    "cache.maxEntries": effect(f"{POLICY}::test_cache_is_bounded_by_entries_and_bytes"),
    "cache.maxBytes": effect(f"{POLICY}::test_cache_is_bounded_by_entries_and_bytes",
                             f"{POLICY}::test_the_cache_holds_to_max_bytes_in_real_memory"),
}

TIMEOUTS: dict[str, Entry] = {
    "": effect(f"{TIMEOUT}::test_native_request_timeout_answers_504"),
    "requestTimeout": effect(f"{TIMEOUT}::test_native_request_timeout_answers_504",
                             f"{TIMEOUT}::test_the_shorter_of_request_and_backend_timeouts_wins"),
    "backendRequestTimeout": effect(f"{PROXY}::test_upstream_too_slow_is_504", f"{HOSTILE}::test_backend_hanging_is_504",
                                    f"{TIMEOUT}::test_the_shorter_of_request_and_backend_timeouts_wins"),
    "tunnelIdleTimeout": effect(f"{WS}::test_idle_tunnel_is_closed_after_tunnel_idle_timeout",
                                f"{LOADER}::test_upgrade_and_tunnel_settings_are_checked"),
}

AUTHORIZATION: dict[str, Entry] = {
    "": effect(f"{AUTHZ_E2E}::test_the_issue_rule_allows_user1_with_the_admin_role_only",
               f"{AUTHZ}::test_a_bare_string_is_an_allow_rule_and_no_match_denies"),
    "rules": effect(f"{AUTHZ_E2E}::test_the_issue_rule_allows_user1_with_the_admin_role_only",
                    f"{AUTHZ}::test_a_bare_string_is_an_allow_rule_and_no_match_denies"),
    "rules[].allow": effect(f"{AUTHZ}::test_any_allow_rule_that_matches_allows_and_names_itself",
                            f"{AUTHZ_E2E}::test_rules_over_the_request"),
    "rules[].deny": effect(f"{AUTHZ_E2E}::test_deny_and_require", f"{AUTHZ}::test_deny_wins_over_allow"),
    "rules[].require": effect(f"{AUTHZ_E2E}::test_deny_and_require",
                              f"{AUTHZ}::test_require_must_hold_even_when_an_allow_rule_matches"),
    "rules[].shadow": effect(f"{AUTHZ_E2E}::test_a_shadow_rule_is_counted_and_logged_but_never_enforced",
                             f"{AUTHZ}::test_a_shadow_rule_never_denies_but_says_it_would"),
    "rules[].name": effect(f"{AUTHZ_E2E}::test_a_denied_request_names_its_rule_in_the_access_log",
                           f"{AUTHZ}::test_any_allow_rule_that_matches_allows_and_names_itself"),
}

RM_UNIT = f"{UNIT}/test_jwt_resource_metadata.py"
RM_E2E = f"{E2E}/test_idp_e2e.py::test_protected_resource_metadata_is_served_and_named_by_the_challenge"
MCP_E2E = f"{E2E}/test_idp_e2e.py::test_agentgateway_mcp_authentication_loads_as_jwt_auth_with_metadata"

RESOURCE_METADATA: dict[str, Entry] = {
    "": effect(RM_E2E, f"{RM_UNIT}::test_the_policy_answers_its_metadata_paths_and_authenticates_the_rest"),
    "resource": effect(RM_E2E, f"{RM_UNIT}::test_paths_and_url_follow_rfc9728_section_3_1",
                       f"{RM_UNIT}::test_bad_metadata_is_refused_with_its_path"),
    "scopesSupported": effect(MCP_E2E, f"{RM_UNIT}::test_bad_metadata_is_refused_with_its_path"),
    "bearerMethodsSupported": effect(MCP_E2E, f"{RM_UNIT}::test_bad_metadata_is_refused_with_its_path",
                                     f"{RM_UNIT}::test_bearer_methods_are_what_agw_reads"),
    "resourceDocumentation": effect(RM_E2E, f"{RM_UNIT}::test_bad_metadata_is_refused_with_its_path"),
    "resourcePolicyUri": effect(f"{RM_UNIT}::test_the_policy_answers_its_metadata_paths_and_authenticates_the_rest",
                                f"{RM_UNIT}::test_bad_metadata_is_refused_with_its_path"),
}
JWT_AUTH.update(under("resourceMetadata", RESOURCE_METADATA))

# agentgateway's mcpAuthentication: loaded as the jwtAuth (with resourceMetadata) it is; its fields are that
# jwtAuth's, proven by that jwtAuth's tests and the lift's.
MCP_LIFT = f"{RM_UNIT}::test_mcp_authentication_is_a_jwt_auth_with_metadata"
MCP_AUTHENTICATION: dict[str, Entry] = {
    "": effect(MCP_E2E, MCP_LIFT),
    "mode": JWT_AUTH["mode"],
    "issuer": effect(MCP_E2E, f"{RM_UNIT}::test_mcp_authentication_provider_and_a_second_jwt_policy_are_refused"),
    "audiences": effect(MCP_E2E, *JWT_AUTH["audiences"][1]),
    **under("jwks", JWKS, MCP_E2E),
    "provider": refused(f"{RM_UNIT}::test_mcp_authentication_provider_and_a_second_jwt_policy_are_refused"),
    **under("resourceMetadata", RESOURCE_METADATA, MCP_E2E),
}

POLICIES: dict[str, Entry] = {
    "": effect(f"{JWT_E2E}::test_without_a_token_the_exact_401"),
    **under("jwtAuth", JWT_AUTH),
    **under("mcpAuthentication", MCP_AUTHENTICATION, MCP_LIFT),
    **under("timeout", TIMEOUTS),
    **under("authorization", AUTHORIZATION),
}

# jwtAuth and timeout of a listener: replaced by a route's own of that kind; authorization rules: merged with the
# route's (never overridden), which their own tests show.
LISTENER_POLICIES = f"{E2E_EFFECTS}::test_listener_policies_apply_to_routes_that_set_none_of_their_own"
LISTENER_AUTHORIZATION = (f"{AUTHZ_E2E}::test_listener_and_route_rules_both_apply",
                          f"{AUTHZ}::test_listener_and_route_rules_are_merged_not_overridden")

ROUTE: dict[str, Entry] = {
    "name": effect(f"{OPS}::test_access_log_one_json_line_per_request_without_secrets",
                   f"{OPS}::test_metrics_count_known_traffic_exactly"),
    "hostnames": effect(f"{PROXY}::test_routes_by_host_path_and_method"),
    "matches": effect(f"{PROXY}::test_routes_by_host_path_and_method"),
    "matches[].path": effect(f"{PROXY}::test_routes_by_host_path_and_method"),
    "matches[].path.exact": effect(f"{PROXY}::test_routes_by_header", f"{OPS}::test_sighup_good_config_adds_a_route_and_keeps_connections"),
    "matches[].path.pathPrefix": effect(f"{PROXY}::test_routes_by_host_path_and_method",
                                        f"{E2E}/test_route_bypass.py::test_spellings_of_a_protected_path_meet_its_policy"),
    "matches[].path.regex": effect(f"{PROXY}::test_routes_by_host_path_and_method"),
    "matches[].method": effect(f"{PROXY}::test_routes_by_host_path_and_method"),
    "matches[].headers": effect(f"{PROXY}::test_routes_by_header"),
    "matches[].headers[].name": effect(f"{PROXY}::test_routes_by_header"),
    "matches[].headers[].value": effect(f"{PROXY}::test_routes_by_header"),
    "matches[].headers[].value.exact": effect(f"{PROXY}::test_routes_by_header"),
    "matches[].headers[].value.regex": effect(f"{E2E_EFFECTS}::test_header_regex_match_routes_the_request"),
    "backends": effect(f"{PROXY}::test_routes_by_host_path_and_method", f"{LOADER}::test_every_routing_problem_is_reported_at_once"),
    "backends[].host": effect(f"{PROXY}::test_routes_by_host_path_and_method", f"{PROXY}::test_upstream_refused_is_502"),
    "backends[].weight": effect(f"{E2E_EFFECTS}::test_backend_weights_share_requests_in_proportion"),
    "upgrades": effect(f"{WS}::test_unlisted_upgrade_tokens_are_refused_and_listed_ones_pass",
                       f"{LOADER}::test_upgrade_and_tunnel_settings_are_checked"),
    **under("policies", POLICIES),
}


# --- native: the whole tree -----------------------------------------------------------------------------------

NATIVE: dict[str, Entry] = {
    "binds": effect(f"{PROXY}::test_routes_by_host_path_and_method"),
    "binds[].port": effect(f"{PROXY}::test_routes_by_host_path_and_method", f"{LOADER}::test_the_same_port_twice"),
    "binds[].address": effect(f"{E2E_EFFECTS}::test_bind_address_is_the_only_address_agw_listens_on"),
    "binds[].tls": effect(f"{TLS}::test_https_request_reaches_the_backend_with_forwarded_proto_https"),
    "binds[].tls.cert": effect(f"{TLS}::test_https_request_reaches_the_backend_with_forwarded_proto_https"),
    "binds[].tls.key": effect(f"{TLS}::test_https_request_reaches_the_backend_with_forwarded_proto_https"),
    "binds[].tls.certificates": effect(f"{TLS_EDGE}::test_sni_chooses_the_certificate_by_name_and_key_type",
                                       f"{TLS_EDGE}::test_certificates_that_cannot_be_served_are_refused_with_their_path"),
    "binds[].tls.certificates[].cert": effect(f"{TLS_EDGE}::test_sni_chooses_the_certificate_by_name_and_key_type",
                                              f"{TLS_EDGE}::test_certificates_that_cannot_be_served_are_refused_with_their_path"),
    "binds[].tls.certificates[].key": effect(f"{TLS_EDGE}::test_sni_chooses_the_certificate_by_name_and_key_type",
                                             f"{TLS_EDGE}::test_certificates_that_cannot_be_served_are_refused_with_their_path"),
    "binds[].tls.clientCertificate": effect(f"{MTLS}::test_client_certificate_required"),
    "binds[].tls.clientCertificate.mode": effect(f"{MTLS}::test_client_certificate_required",
                                                 f"{MTLS}::test_client_certificate_optional"),
    "binds[].tls.clientCertificate.caCertificates": effect(f"{MTLS}::test_client_certificate_required",
                                                           f"{TLS_EDGE}::test_certificates_that_cannot_be_served_are_refused_with_their_path"),
    "binds[].listeners": effect(f"{PROXY}::test_routes_by_host_path_and_method"),
    "binds[].listeners[].name": effect(f"{CHECK}::test_a_listener_policy_with_a_missing_jwks_file_makes_the_routes_using_it_invalid",
                                       f"{EFFECTS}::test_a_route_without_a_name_is_named_after_its_listener"),
    "binds[].listeners[].protocol": effect(f"{EFFECTS}::test_listener_protocol_https_needs_the_binds_tls",
                                           f"{LOADER}::test_every_routing_problem_is_reported_at_once"),
    "binds[].listeners[].hostname": refused(f"{EFFECTS}::test_a_native_listener_hostname_is_refused"),
    **under("binds[].listeners[].policies", {k: v for k, v in POLICIES.items() if not k.startswith("authorization")},
            LISTENER_POLICIES),
    **under("binds[].listeners[].policies.authorization", AUTHORIZATION, *LISTENER_AUTHORIZATION),
    "binds[].listeners[].routes": effect(f"{PROXY}::test_routes_by_host_path_and_method"),
    **under("binds[].listeners[].routes[]", ROUTE),
    "config": effect(f"{HOSTILE}::test_slowloris_head_is_408_and_closed"),
    "config.connectTimeout": effect(f"{E2E_EFFECTS}::test_connect_timeout_answers_504",
                                    f"{LOADER}::test_settings_durations"),
    "config.responseTimeout": effect(f"{E2E_EFFECTS}::test_response_timeout_is_the_backend_timeout_of_routes_without_one",
                                     f"{LOADER}::test_settings_durations"),
    "config.requestHeaderTimeout": effect(f"{HOSTILE}::test_slowloris_head_is_408_and_closed",
                                          f"{E2E}/test_tls.py::test_stalled_tls_handshake_is_closed_after_the_header_timeout"),
    "config.keepaliveTimeout": effect(f"{HOSTILE}::test_idle_keepalive_connection_is_closed",
                                      f"{HOSTILE}::test_connection_busy_within_keepalive_stays_open"),
    "config.bodyIdleTimeout": effect(f"{E2E_EFFECTS}::test_body_idle_timeout_ends_a_stalled_upload"),
    "config.upstreamIdleTimeout": effect(f"{E2E_EFFECTS}::test_upstream_pool_limits"),
    "config.maxHeaderBytes": effect(f"{E2E_EFFECTS}::test_header_limits"),
    "config.maxHeaders": effect(f"{E2E_EFFECTS}::test_header_limits"),
    "config.maxConnections": effect(f"{HOSTILE}::test_connections_over_the_limit_are_refused_without_harming_the_others"),
    "config.maxTunnels": effect(f"{WS}::test_tunnels_over_the_cap_are_503",
                                f"{LOADER}::test_upgrade_and_tunnel_settings_are_checked"),
    "config.maxIdleUpstreamPerBackend": effect(f"{E2E_EFFECTS}::test_upstream_pool_limits"),
    "config.mergeSlashes": effect(f"{E2E}/test_route_bypass.py::test_spellings_of_a_protected_path_meet_its_policy",
                                  f"{E2E_EFFECTS}::test_merge_slashes_false_keeps_runs_of_slashes"),
    "config.startupGrace": effect(f"{OPS}::test_startup_grace_holds_traffic_until_the_keys_load",
                                  f"{CHECK}::test_startup_grace_is_a_duration_and_may_be_zero"),
}


# --- Kubernetes -------------------------------------------------------------------------------------------------

KUBE_REFUSALS = f"{EFFECTS}::test_kubernetes_settings_agw_cannot_honour_are_refused"

METADATA: dict[str, Entry] = {
    "Kubernetes metadata.name": effect(f"{KUBE}::test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy",
                                       f"{KUBE}::test_duplicate_objects"),
    "Kubernetes metadata.namespace": effect(f"{KUBE}::test_document_without_namespace_is_in_default",
                                            f"{KUBE}::test_routes_from_other_namespaces_need_allowed_routes_all"),
}

GATEWAY: dict[str, Entry] = {
    "gatewayClassName": effect(f"{EFFECTS}::test_only_gateways_of_class_agentgateway_are_served"),
    "listeners": effect(f"{KUBE}::test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy", f"{GUIDE}::test_the_guide_as_written"),
    "listeners[].name": effect(f"{KUBE}::test_parent_ref_section_name_and_port",
                               f"{KUBE}::test_policy_with_section_name_applies_to_that_listener"),
    "listeners[].port": effect(f"{GUIDE}::test_the_guide_as_written", f"{KUBE}::test_parent_ref_section_name_and_port"),
    "listeners[].protocol": effect(f"{KUBE}::test_https_listeners_become_one_tls_bind_with_their_secrets",
                                   f"{KUBE}::test_http_and_https_on_one_port_conflict",
                                   f"{TLS_EDGE}::test_gateway_api_https_listeners_serve_their_secrets"),
    "listeners[].hostname": effect(f"{KUBE}::test_listener_hostname_narrows_the_route"),
    "listeners[].allowedRoutes": effect(f"{KUBE}::test_routes_from_other_namespaces_need_allowed_routes_all"),
    "listeners[].allowedRoutes.namespaces": effect(f"{KUBE}::test_routes_from_other_namespaces_need_allowed_routes_all"),
    "listeners[].allowedRoutes.namespaces.from": effect(
        f"{KUBE}::test_routes_from_other_namespaces_need_allowed_routes_all", KUBE_REFUSALS),
    "listeners[].allowedRoutes.namespaces.selector": refused(KUBE_REFUSALS),
    "listeners[].allowedRoutes.kinds": effect(KUBE_REFUSALS),
    "listeners[].tls": effect(f"{KUBE}::test_https_listeners_become_one_tls_bind_with_their_secrets",
                              f"{KUBE}::test_https_listeners_agw_cannot_honour_are_refused", KUBE_REFUSALS),
    "addresses": refused(KUBE_REFUSALS),
    "infrastructure": refused(KUBE_REFUSALS),
}

HTTPROUTE: dict[str, Entry] = {
    "parentRefs": effect(f"{KUBE}::test_parent_ref_to_a_missing_gateway"),
    "parentRefs[].group": effect(KUBE_REFUSALS),
    "parentRefs[].kind": effect(KUBE_REFUSALS),
    "parentRefs[].namespace": effect(f"{KUBE}::test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy",
                                     f"{KUBE}::test_parent_ref_to_a_missing_gateway"),
    "parentRefs[].name": effect(f"{KUBE}::test_parent_ref_to_a_missing_gateway"),
    "parentRefs[].sectionName": effect(f"{KUBE}::test_parent_ref_section_name_and_port"),
    "parentRefs[].port": effect(f"{KUBE}::test_parent_ref_section_name_and_port"),
    "hostnames": effect(f"{KUBE}::test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy",
                        f"{KUBE}::test_listener_hostname_narrows_the_route"),
    "rules": effect(f"{KUBE}::test_matches_translate_to_native_matches"),
    "rules[].name": effect(f"{EFFECTS}::test_a_policy_targets_one_route_rule_by_section_name"),
    "rules[].matches": effect(f"{KUBE}::test_matches_translate_to_native_matches"),
    "rules[].matches[].path": effect(f"{KUBE}::test_matches_translate_to_native_matches"),
    "rules[].matches[].path.type": effect(f"{KUBE}::test_matches_translate_to_native_matches"),
    "rules[].matches[].path.value": effect(f"{KUBE}::test_matches_translate_to_native_matches"),
    "rules[].matches[].method": effect(f"{KUBE}::test_matches_translate_to_native_matches"),
    "rules[].matches[].headers": effect(f"{KUBE}::test_matches_translate_to_native_matches"),
    "rules[].matches[].headers[].type": effect(f"{KUBE}::test_matches_translate_to_native_matches"),
    "rules[].matches[].headers[].name": effect(f"{KUBE}::test_matches_translate_to_native_matches"),
    "rules[].matches[].headers[].value": effect(f"{KUBE}::test_matches_translate_to_native_matches"),
    "rules[].matches[].queryParams": refused(KUBE_REFUSALS),
    "rules[].backendRefs": effect(f"{KUBE}::test_several_backend_refs_become_weighted_backends"),
    "rules[].backendRefs[].group": effect(KUBE_REFUSALS),
    "rules[].backendRefs[].kind": effect(KUBE_REFUSALS),
    "rules[].backendRefs[].name": effect(f"{KUBE}::test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy"),
    "rules[].backendRefs[].namespace": effect(f"{KUBE}::test_route_policy_replaces_the_gateway_policy_on_that_route_only",
                                              f"{KUBE}::test_resolve_maps_service_ports_to_local_addresses"),
    "rules[].backendRefs[].port": effect(f"{KUBE}::test_backend_ref_needs_a_port",
                                         f"{KUBE}::test_resolve_maps_service_ports_to_local_addresses"),
    "rules[].backendRefs[].weight": effect(f"{KUBE}::test_several_backend_refs_become_weighted_backends", KUBE_REFUSALS),
    "rules[].backendRefs[].filters": refused(KUBE_REFUSALS),
    "rules[].filters": refused(f"{KUBE}::test_route_filters_are_refused"),
    "rules[].timeouts": effect(f"{KUBE}::test_rule_timeouts_become_the_timeout_policy"),
    "rules[].timeouts.request": effect(f"{TIMEOUT}::test_httproute_timeouts_request_answers_504",
                                       f"{KUBE}::test_rule_timeouts_become_the_timeout_policy"),
    "rules[].timeouts.backendRequest": effect(f"{KUBE}::test_rule_timeouts_become_the_timeout_policy"),
    "rules[].retry": refused(KUBE_REFUSALS),
    "rules[].sessionPersistence": refused(KUBE_REFUSALS),
}

KUBE_JWKS: dict[str, Entry] = {
    "": effect(f"{KUBE}::test_both_or_neither_jwks_source"),
    "inline": effect(f"{KUBE}::test_guide_inline_variant", f"{GUIDE}::test_inline_jwks_variant",
                     f"{KUBE}::test_inline_jwks_without_keys_list"),
    "remote": effect(f"{KUBE}::test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy"),
    "remote.jwksPath": effect(f"{KUBE}::test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy",
                              f"{KUBE}::test_jwks_path_that_is_a_full_url_is_used_as_is"),
    "remote.cacheDuration": effect(f"{KUBE}::test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy",
                                   f"{KUBE}::test_several_problems_are_joined"),
    "remote.backendRef": effect(f"{KUBE}::test_resolve_maps_service_ports_to_local_addresses"),
    "remote.backendRef.group": effect(KUBE_REFUSALS),
    "remote.backendRef.kind": effect(KUBE_REFUSALS),
    "remote.backendRef.name": effect(f"{KUBE}::test_resolve_maps_service_ports_to_local_addresses"),
    "remote.backendRef.namespace": effect(f"{KUBE}::test_policy_backend_ref_without_namespace_takes_the_policy_namespace"),
    "remote.backendRef.port": effect(f"{KUBE}::test_resolve_maps_service_ports_to_local_addresses",
                                     f"{GUIDE}::test_a_jwks_backend_ref_on_port_443_is_fetched_over_tls"),
}

POLICY_SPEC: dict[str, Entry] = {
    "targetRefs": effect(f"{KUBE}::test_route_policy_replaces_the_gateway_policy_on_that_route_only",
                         f"{KUBE}::test_target_not_found"),
    "targetRefs[].group": effect(f"{KUBE}::test_target_kind_must_be_gateway_or_httproute"),
    "targetRefs[].kind": effect(f"{KUBE}::test_target_kind_must_be_gateway_or_httproute",
                                f"{KUBE}::test_route_policy_replaces_the_gateway_policy_on_that_route_only"),
    "targetRefs[].name": effect(f"{KUBE}::test_target_not_found"),
    "targetRefs[].sectionName": effect(f"{KUBE}::test_policy_with_section_name_applies_to_that_listener",
                                       f"{EFFECTS}::test_a_policy_targets_one_route_rule_by_section_name"),
    "traffic": effect(f"{GUIDE}::test_the_guide_as_written"),
    "traffic.jwtAuthentication": effect(f"{GUIDE}::test_the_guide_as_written",
                                        f"{KUBE}::test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy"),
    "traffic.jwtAuthentication.mode": effect(f"{KUBE}::test_guide_modes_in_any_case", f"{KUBE}::test_mode_defaults_to_strict",
                                             f"{GUIDE}::test_optional_variant", f"{GUIDE}::test_permissive_variant"),
    "traffic.jwtAuthentication.providers": effect(f"{KUBE}::test_guide_multi_provider_variant",
                                                  f"{GUIDE}::test_multi_provider_variant"),
    "traffic.jwtAuthentication.providers[].issuer": effect(
        f"{KUBE}::test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy", f"{KUBE}::test_several_problems_are_joined"),
    "traffic.jwtAuthentication.providers[].audiences": effect(
        f"{KUBE}::test_guide_yaml_becomes_a_route_with_the_remote_jwks_policy"),
    **under("traffic.jwtAuthentication.providers[].jwks", KUBE_JWKS),
    "traffic.jwtAuthentication.providers[].jwtValidationOptions": effect(
        f"{EFFECTS}::test_kubernetes_required_claims_reach_the_provider"),
    "traffic.jwtAuthentication.providers[].jwtValidationOptions.requiredClaims": effect(
        f"{EFFECTS}::test_kubernetes_required_claims_reach_the_provider"),
}

POLICY_SPEC.update({
    "traffic.authorization": effect(f"{KUBE_AUTHZ}::test_an_allow_policy_on_the_route_next_to_jwt_on_the_gateway",
                                    f"{KUBE_AUTHZ}::test_rules_of_the_gateway_and_the_route_are_merged"),
    "traffic.authorization.action": effect(f"{KUBE_AUTHZ}::test_rules_of_the_gateway_and_the_route_are_merged",
                                           f"{KUBE_AUTHZ}::test_bad_actions_and_expression_counts"),
    "traffic.authorization.policy": effect(f"{KUBE_AUTHZ}::test_an_allow_policy_on_the_route_next_to_jwt_on_the_gateway"),
    "traffic.authorization.policy.matchExpressions": effect(
        f"{KUBE_AUTHZ}::test_the_translated_rules_build_a_policy",
        f"{KUBE_AUTHZ}::test_a_compile_error_is_invalid_with_its_path_message_and_position"),
})

UNSUPPORTED_POLICY_KEYS = f"{EFFECTS}::test_agentgateway_policy_keys_agw_does_not_implement_are_refused"

# agw.config.kube.policy's UNSUPPORTED_POLICY_SPEC and UNSUPPORTED_TRAFFIC: agentgateway keys refused by name.
REFUSED_POLICY_KEYS: dict[str, Entry] = {
    **{f"spec.{name}": refused(UNSUPPORTED_POLICY_KEYS) for name in ("targetSelectors", "frontend", "backend")},
    **{f"spec.traffic.{name}": refused(UNSUPPORTED_POLICY_KEYS) for name in (
        "apiKeyAuthentication", "basicAuthentication", "cors", "csrf", "directResponse", "extAuth", "extProc",
        "headerModifiers", "hostRewrite", "phase", "rateLimit", "retry", "timeouts", "transformation")},
}


def _kind(kind: str, table: dict[str, Entry]) -> dict[str, Entry]:
    return {f"{kind} spec.{rel}" if not rel.startswith("spec.") else f"{kind} {rel}": entry
            for rel, entry in table.items()}


FIELDS: dict[str, Entry] = {
    **NATIVE,
    **METADATA,
    **_kind("Gateway", GATEWAY),
    **_kind("HTTPRoute", HTTPROUTE),
    **_kind("AgentgatewayPolicy", POLICY_SPEC),
    **_kind("AgentgatewayPolicy", REFUSED_POLICY_KEYS),
}
