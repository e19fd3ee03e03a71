"""The Relay ``Node`` interface: every object with an opaque global id (``resolvers.ids``).

``Query.node(id:)`` lives in ``resolvers.lookup``, which knows every type; this module knows
none, so every type module can implement the interface without import cycles.
"""

from __future__ import annotations

import strawberry


@strawberry.interface(description="An object with an opaque global id, found with `node(id:)`.")
class Node:
    id: strawberry.ID
