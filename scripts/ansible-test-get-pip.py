"""Stand-in for the pip bootstrap script ansible-test downloads from
ci-files.testing.ansible.com (unreachable from our build machines).

ansible-test runs it inside a fresh virtual environment without pip, with
`pip install` style arguments. We install pip from the interpreter's own
ensurepip wheel, then let that pip install what was asked for (from the
package index pip is configured for).
"""

import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main():
    args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"],
                          stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)


if __name__ == "__main__":
    main()
