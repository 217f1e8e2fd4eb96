"""apt: reading signed repositories (release, packages) and resolving like apt-get (resolver)."""
