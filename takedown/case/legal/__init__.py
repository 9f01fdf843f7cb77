"""Legal documents: seizure lists, notice by publication, and the service log.

Pure parts: ``lists`` (the user's domain/IP lists), ``registries`` (PSL + TLD registry table),
``casefile`` (the case TOML), ``templates`` (one TOML of wording per language), ``notice`` (the
notice as blocks, its print and advertisement PDFs). Output: ``pdfdoc``, ``appendix`` (seizure
CSV + court appendix), ``site`` (static pleadings site). Edges: ``seizure`` (reads the lake),
``service`` (SMTP, the evidence vault), ``cli``, ``demo``. See docs/legal.md.
"""
