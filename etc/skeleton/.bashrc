# ~/.bashrc of a new home (prolo dev skeleton; production: /export/skeleton)
