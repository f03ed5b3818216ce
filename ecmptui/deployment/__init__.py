"""A deployment: the target it lives on (lab, Metal, static), what is provisioned there, how
to provision it, and its status.

`target` (the one place that knows the kinds of target), `metal` (the Metal API through
packet-python), `inventory` (what is provisioned, found by tag; SSH access to its nodes),
`static` (nodes listed in the config), `provision` (the guide's steps), `status` (typed
state and its changes), `steps` (step names and progress events).
"""
