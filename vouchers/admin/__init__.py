"""The voucher admin, scoped per merchant (config.admin_console, config.tenancy), one module per model family.

Importing the package registers every model admin, in this order: users and groups
(auth), then merchants, staff, storefronts, API keys and products (catalogue), batches,
codes and code events (batches), issuances and redemptions (issuance). The other
modules hold what those share: forms, the base classes and the pages behind the admins'
buttons (views, keys, loads, reveal); the theme and the merchant scoping every app's
admin builds on are in config.admin_console.

No page, list, search, filter or export shows a plaintext code, a ciphertext, a nonce
or a blind index: codes appear as "…last4" and serial only.
"""

# In registration order (isort would put them alphabetically).
# isort: off
from vouchers.admin import auth  # noqa: F401
from vouchers.admin import catalogue  # noqa: F401
from vouchers.admin import batches  # noqa: F401
from vouchers.admin import issuance  # noqa: F401
# isort: on
