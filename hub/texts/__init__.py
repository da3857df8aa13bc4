"""Words: the gettext catalogues every page and report reads (below the web and the follow-up, so both use one)."""
