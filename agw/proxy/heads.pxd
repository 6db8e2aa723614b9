# C-level declarations of heads.py's functions (an augmenting .pxd): the exchange calls them as C functions.

cpdef bytes request_head(bytes method, bytes target, list lines, list headers, dict hdict, object verdicts,
                         frozenset strip, bytes peer, bytes scheme, bytes fallback_host, bint chunked)
cpdef bytes status_line(int status, bytes reason)
cpdef list relayed_lines(list special, list lines)
