"""The query API: authentication and authorization now, the HTTP layer on top of them."""
