"""REST: typed models of the server's answers and one mixin per route group."""
