"""EAP-IG and MIB graph JSON, to and from `CircuitGraph`: names, reading, writing."""
