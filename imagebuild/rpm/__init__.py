"""dnf/RPM: reading repomd repositories (repository) and resolving with libsolv as dnf 4 does (resolver)."""
