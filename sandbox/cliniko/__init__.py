"""A local stand-in for Cliniko's REST API (``python -m sandbox.cliniko`` / ``cliniko-sandbox``).

Modules: ``generator`` builds a clinic into SQLite (deterministic from seed and scale), ``schema`` is its
storage, ``queries`` turns Cliniko's collection parameters into SQL, ``api`` maps ``/v1`` paths onto an
account, ``mutate`` changes data at run time, ``content`` makes attachment bytes and signed file URLs,
``app`` is the server (auth, budget, faults, admin routes) and ``cli`` its command line.

Admin routes (no auth, loopback only, JSON):

* ``GET /_sandbox/accounts`` -> ``{"accounts": [ACCOUNT, ...]}``; ``GET /_sandbox/accounts/{name}`` ->
  ``ACCOUNT`` = ``{"name", "shard", "seed", "scale", "keys": {"admin", "receptionist", "practitioner",
  "other_shard", "revoked"}}``; ``POST /_sandbox/accounts {"name", "seed", "scale", "shard"}`` -> 201 ACCOUNT.
* ``GET /_sandbox/accounts/{name}/truth`` -> ``{resource: {state: count}}`` (every state listed, 0 included).
* ``GET /_sandbox/accounts/{name}/export/{resource}`` -> NDJSON of every record, as the API renders it
  (attachments add ``_sha256`` and ``_bytes``, null while Cliniko processes the file).
* ``POST /_sandbox/accounts/{name}/mutate`` -> ``{"changed": {resource: {"updated", "created", "archived",
  "deleted": [ids]}}}``; ``ops`` of ``update``, ``create``, ``archive``, ``unarchive``, ``delete``, ``cancel``
  and ``process`` (an attachment created with ``processing_completed: false`` finishes processing; its
  ``updated_at`` stays).
* ``GET /_sandbox/stats``, ``POST /_sandbox/stats/reset``, ``GET|POST /_sandbox/config``.
"""
