"""The central portal: enrollment, posture and event ingest, signed policy and commands,
and the helpdesk pages."""
