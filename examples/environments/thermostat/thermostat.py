"""A room with a heater, to be brought to 21 degrees: a small simulator for multi-turn reinforcement fine-tuning.

The model is told the room's temperature (the observation `reset` returns) and may run the heater, one call at a
time, seeing the temperature after each. The episode scores how close the room ends to the target, less a little per
extra call, so a model improves both by choosing a better first duration and by correcting from what it reads.
Every step is a pure function of the reset arguments and the calls so far: the simulator replays, as forgegov
requires of any environment.
"""

TARGET = 21
DEGREES_PER_MINUTE = 0.5
MAX_MINUTES = 20
CALL_COST = 0.1


class Thermostat:
    def reset(self, start=17, **_row):
        self.temperature = float(start)
        self.calls = 0
        return f" The room is at {self.temperature:g} degrees."

    def heat(self, minutes: int) -> str:
        """Run the heater, then read the thermometer.

        Args:
            minutes: how long to run the heater, from 0 to 20 minutes (each minute warms the room by half a degree)
        """
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= MAX_MINUTES:
            raise ValueError(f"minutes must be a whole number from 0 to {MAX_MINUTES}")
        self.calls += 1
        self.temperature += minutes * DEGREES_PER_MINUTE
        return f"{self.temperature:g} degrees"

    def get_reward(self) -> float:
        if self.calls == 0:
            return 0.0
        closeness = max(0.0, 1.0 - abs(self.temperature - TARGET) / 10)
        return round(max(0.0, closeness - CALL_COST * (self.calls - 1)), 6)
