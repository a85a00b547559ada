"""Personal data: keys and encryption, roles and grants, data-subject requests, the de-identification gate."""
