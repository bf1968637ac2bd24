"""Dataset fingerprint and the self-configuring planner that turns it into vfnetPlans.json."""
