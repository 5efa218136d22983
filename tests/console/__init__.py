"""The admin console: its session, CSRF rule and static files, over real sockets."""
