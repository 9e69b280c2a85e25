"""The BlueKing-compatible REST shim: same routes, envelopes, codes and messages as upstream."""
