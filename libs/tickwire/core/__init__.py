"""Service plumbing shared by every tickwire service: settings, errors, supervision."""
