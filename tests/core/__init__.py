"""In-process tests of the request stages (admit, plan, ...), one file per stage.

They build a real compiled config from a small routes.yaml and use the real store and
health objects; the whole gateway over sockets is tested in the files above this folder.
"""
