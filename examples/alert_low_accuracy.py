# W&B alerts sample: raise an alert when accuracy falls to a threshold. Runwatch routes it to Slack,
# email or webhooks as its alerts.yaml says.
#
#   alerts serve &                                    # or any running service
#   export RUNWATCH_BASE_URL=http://127.0.0.1:8080
#   export RUNWATCH_API_KEY=$(alerts keys create --project alerts-demo)
#   python examples/alert_low_accuracy.py [THRESHOLD]     # default 0.3
#
# The random generator is seeded (RUNWATCH_EXAMPLE_SEED, default 0) so a run is reproducible: the same
# seed and threshold fire the alert at the same step.
import os
import random
import sys

import runwatch as wandb

threshold = float(sys.argv[1]) if len(sys.argv) > 1 else 0.3
random.seed(int(os.environ.get("RUNWATCH_EXAMPLE_SEED", "0")))

wandb.init(project="alerts-demo", config={"threshold": threshold})

for training_step in range(1000):
    # Generate a random number for accuracy
    accuracy = round(random.random() + random.random(), 3)
    print(f"Accuracy is: {accuracy}")

    # Log accuracy to Runwatch
    wandb.log({"Accuracy": accuracy})

    # If the accuracy is below the threshold, fire an alert and stop the run
    if accuracy <= threshold:
        wandb.alert(
            title="Low accuracy",
            text=f"Accuracy {accuracy} is below the acceptable threshold {threshold}",
            level=wandb.AlertLevel.WARN,
        )
        print(f"Alert triggered at step {training_step}")
        break

# Mark the run as finished
wandb.finish()
