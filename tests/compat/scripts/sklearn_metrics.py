"""A scikit-learn classifier: accuracy and F1 as scalars, confusion matrices through wandb.plot and
wandb.sklearn."""

import warnings

import numpy as np
import wandb
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
warnings.filterwarnings("ignore", category=ConvergenceWarning)  # max_iter=5 on purpose
labels = ["setosa", "versicolor", "virginica"]

run = wandb.init(project="compat-sklearn", config={"C": 0.05, "max_iter": 200})
for max_iter in (5, 20, 200):
    model = LogisticRegression(C=wandb.config.C, max_iter=max_iter)
    model.fit(X_train, y_train)
    y_pred = model.predict(X_test)
    wandb.log({"accuracy": accuracy_score(y_test, y_pred),
               "f1_macro": f1_score(y_test, y_pred, average="macro"), "max_iter": max_iter})

probs = model.predict_proba(X_test)
wandb.log({"conf_mat": wandb.plot.confusion_matrix(probs=None, y_true=y_test.tolist(), preds=y_pred.tolist(),
                                                   class_names=labels)})
wandb.sklearn.plot_confusion_matrix(y_test, y_pred, labels)
wandb.summary["test_accuracy"] = float(np.mean(y_pred == y_test))
run.finish()
