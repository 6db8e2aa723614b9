# C-level declarations of batch.py's class (an augmenting .pxd: batch.py stays plain Python and runs
# uncompiled too).

cdef class WriteBatch:
    cdef public object loop
    cdef public list transports
    cdef public list chunks
    cdef public bint scheduled
    cdef public Py_ssize_t pending

    cpdef add(self, object transport, bytes data)
    cpdef flush(self)
