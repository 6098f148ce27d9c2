"""Signals the trials app sends for apps that build on it (``trials`` imports none of them).

``trials_changed``: trials were synced or curated in this process and their matches are due
(``Trial.needs_evaluation``). Receivers do their follow-up work in the same process and may
return a one-line summary, which the sender prints. Sent with ``progress``: an optional
callable taking a count of items done, for a progress bar.
"""

from django.dispatch import Signal

trials_changed = Signal()
