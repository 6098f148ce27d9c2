"""The public pre-screening form at ``/prescreen/``: people with gastric, junction or
oesophageal cancer (or their families) answer a few plain questions, see the open trials they
may fit, and may ask a coordinator to contact them.

``questions`` holds the steps, their forms and the pure mapping of answers to the engine's
facts; ``views`` the pages; ``referral`` what a consented request to be contacted writes;
``guard`` the anti-abuse measures.
"""
