"""Agents: the NPI-shaped actor-critic network (``networks``), the Anakin-style A2C
(``actor_critic``), the subprogram curriculum (``curriculum``) and a random policy (``random``).
"""
