"""The /ui page: static HTML/CSS/JS in this directory, its browser libraries vendored in vendor/
(``vendor.sh``, pinned by package.json / package-lock.json), served by the ingress."""
