"""Small MDPs with known answers, for testing meta-gradient agents (``DiscountingChain-v0``)."""

from npigym.envs.toy.env import DiscountingChain, context_rewards, true_value
from npigym.envs.toy.types import Observation, State

__all__ = ["DiscountingChain", "Observation", "State", "context_rewards", "true_value"]
