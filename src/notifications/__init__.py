"""Notifications: rendering (templates) and transports (SMTP, maildir, in-memory).

Stands alone: it never imports ``workflow``. Built with the deadline reminders.
"""
