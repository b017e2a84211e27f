"""rdev_common: the event contract and everything the rdev services share."""
