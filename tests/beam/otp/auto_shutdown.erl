#!/usr/bin/env escript
%% Item 6: significant children and auto_shutdown.
-module(auto_shutdown).
-mode(compile).
-behaviour(supervisor).
-export([main/1, init/1, child/1]).

main(_) ->
    process_flag(trap_exit, true),
    run(any_significant, transient, normal),
    run(all_significant, transient, normal),
    run(all_significant, temporary, normal),
    run(any_significant, transient, crash),
    io:format("significant under never: ~p~n",
              [element(1, supervisor:start_link(?MODULE, {never, transient}))]),
    io:format("permanent significant: ~p~n",
              [supervisor:start_link(?MODULE, {any_significant, permanent})]),
    {ok, S2} = supervisor:start_link(?MODULE, {all_significant, transient}),
    ok = supervisor:terminate_child(S2, a), ok = supervisor:terminate_child(S2, b),
    timer:sleep(50),
    io:format("terminate_child of every significant child: sup alive=~p~n",
              [is_process_alive(S2)]).

run(Auto, Restart, How) ->
    {ok, Sup} = supervisor:start_link(?MODULE, {Auto, Restart}),
    [{_, A, _, _}, {_, B, _, _}, {_, _, _, _}] = lists:reverse(supervisor:which_children(Sup)),
    A ! How,
    timer:sleep(50),
    io:format("~p ~p ~p, one significant exits: sup alive=~p~n",
              [Auto, Restart, How, is_process_alive(Sup)]),
    case is_process_alive(Sup) of
        true ->
            B ! How, timer:sleep(50),
            io:format("   then the second: sup alive=~p~n", [is_process_alive(Sup)]),
            receive {'EXIT', Sup, R} -> io:format("   sup exit: ~p~n", [R]) after 0 ->
                unlink(Sup), exit(Sup, kill) end;
        false -> receive {'EXIT', Sup, R} -> io:format("   sup exit: ~p~n", [R]) end
    end.

init({Auto, Restart}) ->
    {ok, {#{strategy => one_for_one, auto_shutdown => Auto, intensity => 5},
          [#{id => a, start => {?MODULE, child, [a]}, restart => Restart, significant => true},
           #{id => b, start => {?MODULE, child, [b]}, restart => Restart, significant => true},
           #{id => c, start => {?MODULE, child, [c]}, restart => permanent}]}}.

child(_) -> {ok, spawn_link(fun() -> receive normal -> ok; crash -> exit(crash) end end)}.
