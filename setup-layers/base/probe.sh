# base, when the fingerprint holds: the firewall's rules are loaded (no file shows it).
firewall_loaded
