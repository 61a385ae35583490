"""Protocol logic: pure code with no I/O (no trio, no sockets, no CTP binding).

The envelope, validation, the message catalogue, error mapping and the struct <-> JSON codec.
"""
