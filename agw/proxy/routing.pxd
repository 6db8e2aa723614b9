# C-level declarations of routing.py's classes (an augmenting .pxd; see server.pxd).
from agw.proxy.upstream cimport BackendPool


cdef class RouteRuntime:
    cdef public str name
    cdef public object host_matcher
    cdef public list predicates
    cdef public BackendPool pool
    cdef public tuple policies
    cdef public frozenset strip_headers
    cdef public frozenset edited_headers
    cdef public double request_timeout
    cdef public double response_timeout
    cdef public frozenset upgrades
    cdef public double tunnel_idle_timeout
    cdef public bint match_all


cdef class Router:
    cdef public list routes
    cdef public RouteRuntime only
    cdef public frozenset special_headers
