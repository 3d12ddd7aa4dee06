"""The studio's tabs: each module has `build(ctx)` (create components) and `wire(ctx)` (connect events)."""
