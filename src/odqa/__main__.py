from odqa.cli import main

main()
